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

  it('never takes a block that holds what only masking line by line sees: wrapped base64 of a value, its hints', async () => {
    for (const value of VALUES) {
      const { out, mask, log } = output(value);
      // A file with the value in it, base64 wrapped at 76 columns (`base64 .env`): the value's core is cut
      // across lines, so no form is in the block, only a hint (the start or end of a core).
      for (let shift = 0; shift < 3; shift++) {
        const wrapped = Buffer.from(`${'#'.repeat(40 + shift)}\nTOKEN=${value}\n${'#'.repeat(40)}\n`)
          .toString('base64')
          .replace(/.{76}/g, '$&\n');
        const lines = `${wrapped}\n`.replace(/\n+$/, '\n');
        const count = lines.split('\n').length - 1;
        expect(out.writeBlock(Buffer.from(lines), count, 'stdout'), `${value} ${shift}`).toBe(false);
      }
      for (const hint of mask.lineHints)
        expect(out.writeBlock(block(hint.toString()), 50, 'stdout'), `${value}: ${hint}`).toBe(false);
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
