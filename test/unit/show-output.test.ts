/**
 * How `agentd show` words the output a sealed record kept (src/cli/show.ts): what it left out is not
 * only links and special files.
 */
import { describe, expect, it } from 'vitest';
import { outputText } from '../../src/cli/show-run.js';
import type { SessionRecord } from '../../src/sessions/records.js';

const at = '2026-12-06T00:00:00.000Z';
const record = (output: SessionRecord['output']): SessionRecord => ({
  version: 1,
  id: '0123456789abcdef',
  agent: 'demo',
  repo: 'git://127.0.0.1/r.git',
  acceptedAt: at,
  phase: 'finished',
  phases: [{ phase: 'queued', at }],
  ...(output === undefined ? {} : { output }),
});

describe('agentd show: the output kept', () => {
  it('says entries were left out without calling them all links or paths outside it', () => {
    // What an agent's names with a newline or an escape, and 40 directories past depth 64, count as.
    const text = outputText(record({ files: 3, bytes: 37, truncated: false, skipped: 47 }));
    expect(text).toBe(
      '3 file(s), 37 bytes (47 left out: symbolic links, special files, names or paths it does not keep)',
    );
  });

  it('says why there is none, and what cut or damaged it', () => {
    expect(outputText(record({ files: 0, bytes: 0, truncated: false, skipped: 0, missing: 'why' }))).toBe(
      'none: why',
    );
    expect(outputText(record({ files: 1, bytes: 5, truncated: true, skipped: 0, damaged: 'stopped' }))).toBe(
      '1 file(s), 5 bytes (cut at its bound, damaged: stopped)',
    );
  });
});
