import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createMasker } from '../../src/runner/mask.js';
import { readSessionLog } from '../../src/runner/session-log.js';
import { SessionOutput } from '../../src/runner/session-output.js';
import { makeTempDir } from '../helpers/resources.js';

const VALUES = [
  'bench-token-value',
  'ghp_abcdefghijklmnopqrstuvwxyz0123456789AB',
  'sk-proj-Abc123Def456Ghi789Jkl012Mno345',
  'ZZZZZZZZZZZZZZZZZZZZ',
  'hunter2hunter2',
];

function output(value: string) {
  const dir = makeTempDir('agentd-unit-block-search-');
  const mask = createMasker([value]);
  const out = new SessionOutput(
    { logFile: join(dir, 'session.log'), logMaxBytes: 64 * 1024 * 1024, onLine: () => {} },
    mask,
  );
  return { out, mask, log: join(dir, 'session.log') };
}

/** Log-like lines, with `inside` somewhere in the middle one. */
function block(inside: string): Buffer {
  const lines = Array.from(
    { length: 50 },
    (_, i) => `2026-12-07T07:00:0${i % 10}Z INFO request ${i} path=/api/${randomBytes(4).toString('hex')}`,
  );
  const line = lines[25] as string;
  const at = line.length % 17;
  lines[25] = line.slice(0, at) + inside + line.slice(at);
  return Buffer.from(`${lines.join('\n')}\n`);
}

describe('the search of a block of lines for the masked forms', () => {
  it('never takes a block that holds a form: it goes line by line and is masked', async () => {
    for (const value of VALUES) {
      const { out, mask, log } = output(value);
      for (const form of mask.forms.filter((f) => !/[\r\n]/.test(f))) {
        expect(out.writeBlock(block(form), 50, 'stdout'), `${value}: ${form}`).toBe(false);
      }
      expect(out.writeBlock(block('nothing masked here'), 50, 'stdout')).toBe(true);
      await out.close();
      expect(JSON.stringify(readSessionLog(log))).not.toContain(value);
    }
  });

  it('looks for a form from its rarest byte on: a block with that part of one only goes line by line too', async () => {
    const { out } = output('bench-token-value');
    // The value's hex in capitals, from its first capital on (what the block is searched for).
    const hex = Buffer.from('bench-token-value').toString('hex').toUpperCase();
    const tail = hex.slice(/[A-Z]/.exec(hex)?.index ?? 0);
    expect(tail.length).toBeLessThan(hex.length);
    expect(out.writeBlock(block(tail), 50, 'stdout')).toBe(false);
    await out.close();
  });
});
