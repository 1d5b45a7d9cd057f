import { describe, expect, it } from 'vitest';
import { EXIT, exitCodeForRecord } from '../../src/cli/exit-codes.js';
import type { SessionRecord } from '../../src/sessions/records.js';
import { finishedRecord } from '../helpers/session-record.js';

function ended(extra: Partial<SessionRecord>): SessionRecord {
  return { ...finishedRecord('00000000000000e1', extra.outcome ?? 'failed'), ...extra };
}

describe('exitCodeForRecord', () => {
  it('--exit-code command: a failed session whose command ran exits with the command own code', () => {
    const record = ended({ outcome: 'failed', kind: 'work_failed', exitCode: 5 });
    expect(exitCodeForRecord(record, 'command')).toBe(5);
    expect(exitCodeForRecord(record, 'outcome')).toBe(EXIT.failed);
    const killed = ended({ outcome: 'failed', kind: 'killed', exitCode: 137, signal: 'SIGKILL' });
    expect(exitCodeForRecord(killed, 'command')).toBe(137);
  });

  it('--exit-code command: a failed clone or setup exits 1, not git or the setup step code as the command', () => {
    // As setupFailed records them: outcome failed, git's (or the setup step's) code, no kind.
    const clone = ended({
      outcome: 'failed',
      exitCode: 128,
      message: 'git clone of git://h/r.git failed: fatal: ...',
    });
    expect(exitCodeForRecord(clone, 'command')).toBe(EXIT.failed);
    const setup = ended({
      outcome: 'failed',
      exitCode: 126,
      message: 'setup failed: agentd: cap_add needs setpriv',
    });
    expect(exitCodeForRecord(setup, 'command')).toBe(EXIT.failed);
  });

  it('--strict --exit-code command: a blocked session exits with its own code; other outcomes keep theirs', () => {
    const blocked = ended({ outcome: 'succeeded', kind: 'blocked', exitCode: 3 });
    expect(exitCodeForRecord(blocked, 'command', true)).toBe(3);
    expect(exitCodeForRecord(blocked, 'command', false)).toBe(EXIT.succeeded);
    expect(exitCodeForRecord(ended({ outcome: 'timed_out', exitCode: 143 }), 'command')).toBe(EXIT.timedOut);
    expect(exitCodeForRecord(ended({ outcome: 'error', exitCode: 125 }), 'command')).toBe(
      EXIT.infrastructure,
    );
  });
});
