import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openOutputChannels } from '../../src/adapters/output-channel.js';
import { OutputReader } from '../../src/adapters/output-reader.js';
import type { AttachedRun } from '../../src/adapters/podman.js';
import { OUTPUT_LINE_MAX_BYTES } from '../../src/constants.js';
import { createMasker } from '../../src/runner/mask.js';
import { readSessionLog } from '../../src/runner/session-log.js';
import { SessionOutput } from '../../src/runner/session-output.js';
import { SessionBus } from '../../src/sessions/session-bus.js';
import { makeTempDir } from '../helpers/resources.js';

const VALUE = 'views-test-token-0123456789';
const children: ReturnType<typeof spawn>[] = [];

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

/** Lines of every kind the output path treats apart: short and long, masked, multi-byte, invalid UTF-8, `\r\n`. */
function makeLines(count: number): Buffer[] {
  const lines: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    // Most lines plain (they go through in blocks), now and then one of the others.
    const kind = i % 11 === 5 ? 5 : i % 4999;
    const length = (i * 7919) % (kind === 0 ? 20_000 : 300);
    let text = randomBytes(Math.ceil(length / 2))
      .toString('hex')
      .slice(0, length);
    if (kind === 3) text = `token=${VALUE} and more`;
    if (kind === 5) text = `ünïcödé ✓ ${text} 😀`;
    let line = Buffer.from(text);
    if (kind === 7) line = Buffer.concat([line, Buffer.from([0xff, 0xc3])]);
    lines.push(Buffer.concat([line, Buffer.from(kind === 9 ? '\r\n' : '\n')]));
  }
  return lines;
}

describe('the output path reading views of the channel’s buffer', () => {
  it('logs and hands on exactly what masking the lines one by one gives, for a flood written in pieces of any size', async () => {
    const dir = makeTempDir('agentd-unit-views-');
    const lines = makeLines(60_000);
    const input = join(dir, 'input');
    writeFileSync(input, Buffer.concat(lines));
    const mask = createMasker([VALUE]);
    const expected = lines.map((line) => mask(line.toString('utf8').replace(/\r?\n$/, '')));

    const bus = new SessionBus();
    const handed: string[] = [];
    let blocks = 0;
    bus.follow('s', (event) => {
      if (event.type === 'output') for (const line of event.lines) handed.push(line.text);
    });
    const out = new SessionOutput(
      {
        logFile: join(dir, 'session.log'),
        logMaxBytes: 1024 * 1024 * 1024,
        onLine: (line) => bus.publishLine('s', line),
        onBlock: (block) => {
          blocks++;
          bus.publishLine('s', block);
        },
      },
      mask,
    );
    const { handler, bind } = out.reader(
      (text, _end, cont, stream, masked) => out.write(text, cont, stream, masked),
      (bytes, count, stream) => out.writeBlock(bytes, count, stream),
    );
    const channels = openOutputChannels(1);
    const [end] = await channels.ends;
    // Pieces of 1 byte to 300 KB, as fast as the socket takes them (it stays full).
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const fs = require('node:fs');
         const bytes = fs.readFileSync(${JSON.stringify(input)});
         for (let at = 0, i = 0; at < bytes.length; i++) {
           const size = [8192, 1, 300000, 65536, 777, 131072][i % 6];
           fs.writeSync(1, bytes.subarray(at, at + size));
           at += size;
         }`,
      ],
      { stdio: ['ignore', end, 'inherit'] },
    );
    children.push(child);
    channels.close(true);
    const reader = new OutputReader(
      channels.sources[0] as NonNullable<(typeof channels.sources)[0]>,
      (text, ended) => handler(text, ended, 'stdout'),
      {
        maxLineBytes: OUTPUT_LINE_MAX_BYTES,
        onBlock: (bytes, count) => handler.block?.(bytes, count, 'stdout') ?? false,
      },
    );
    bind({ pause: () => reader.pause(), resume: () => reader.resume() } as AttachedRun);
    await reader.done;
    await out.close();
    await new Promise((resolve) => setImmediate(resolve));

    expect(handed.length).toBe(expected.length);
    expect(handed).toEqual(expected);
    const logged = readSessionLog(join(dir, 'session.log')).map((entry) =>
      'text' in entry ? entry.text : entry,
    );
    expect(logged).toEqual(expected);
    // Whole lines did go through as blocks (the path whose bytes are views), and the value nowhere.
    expect(blocks).toBeGreaterThan(100);
    expect(handed.join('\n')).not.toContain(VALUE);
  }, 60_000);
});
