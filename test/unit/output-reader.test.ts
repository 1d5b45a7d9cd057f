import { PassThrough } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { LineSplitter, type OutputPiece, OutputReader } from '../../src/adapters/output-reader.js';

function splitAll(max: number, chunks: (string | Buffer)[]): OutputPiece[] {
  const splitter = new LineSplitter(max);
  const out: OutputPiece[] = [];
  for (const chunk of chunks) out.push(...splitter.split(Buffer.from(chunk)));
  const rest = splitter.flush();
  if (rest) out.push(rest);
  return out;
}

const line = (text: string): OutputPiece => ({ text, end: true });
const part = (text: string): OutputPiece => ({ text, end: false });

describe('LineSplitter', () => {
  it('splits at \\n, \\r\\n and a lone \\r, also across chunks', () => {
    expect(splitAll(100, ['a\nb\r\nc\rd', '\n', 'e\r', '\nf'])).toEqual(
      ['a', 'b', 'c', 'd', 'e', 'f'].map(line),
    );
    expect(splitAll(100, ['x\n\n'])).toEqual([line('x'), line('')]);
  });

  it('cuts a line longer than the maximum into pieces, the last one ending the line', () => {
    expect(splitAll(4, ['abcdefghij\nkl'])).toEqual([part('abcd'), part('efgh'), line('ij'), line('kl')]);
    // The same when the line arrives in small chunks.
    expect(splitAll(4, ['ab', 'cd', 'ef', 'gh', 'i\n'])).toEqual([part('abcd'), part('efgh'), line('i')]);
    // A line of exactly the maximum is one piece.
    expect(splitAll(4, ['abcd\n'])).toEqual([line('abcd')]);
  });

  it('never holds more than the maximum of a stream that sends no newline at all', () => {
    const splitter = new LineSplitter(1024);
    let pieces = 0;
    const chunk = Buffer.alloc(65536, 'a');
    for (let i = 0; i < 100; i++) {
      for (const piece of splitter.split(chunk)) {
        expect(Buffer.byteLength(piece.text)).toBeLessThanOrEqual(1024);
        pieces++;
      }
    }
    // The last piece waits for a newline that never comes: the end of the stream hands it on.
    expect(pieces).toBe((100 * 65536) / 1024 - 1);
    expect(splitter.flush()?.text.length).toBe(1024);
  });

  it('cuts at a UTF-8 character boundary and keeps invalid bytes as U+FFFD', () => {
    const pieces = splitAll(5, ['aaaé€\n']);
    expect(pieces.map((p) => p.text).join('')).toBe('aaaé€');
    for (const piece of pieces) expect(Buffer.byteLength(piece.text)).toBeLessThanOrEqual(5);
    expect(pieces.every((p) => !p.text.includes('\ufffd'))).toBe(true);
    expect(splitAll(100, [Buffer.from([0x61, 0xff, 0x62, 0x0a])])).toEqual([line('a\ufffdb')]);
  });
});

describe('OutputReader', () => {
  it('hands on a bounded number of pieces per turn and stops reading while paused', async () => {
    const input = new PassThrough();
    const got: string[] = [];
    const reader = new OutputReader(input, (text) => got.push(text), { maxLineBytes: 64, piecesPerTurn: 10 });
    input.write(`${Array.from({ length: 100 }, (_, i) => `l${i}`).join('\n')}\n`);
    await nextTurn();
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(100);
    reader.pause();
    const before = got.length;
    for (let i = 0; i < 20; i++) await nextTurn();
    expect(got.length).toBe(before);
    reader.resume();
    input.end('tail without newline');
    await reader.done;
    expect(got.length).toBe(101);
    expect(got.at(-1)).toBe('tail without newline');
  });

  it('keeps reading when the consumer throws', async () => {
    const input = new PassThrough();
    const got: string[] = [];
    const reader = new OutputReader(
      input,
      (text) => {
        got.push(text);
        throw new Error('consumer failed');
      },
      { maxLineBytes: 64 },
    );
    input.end('a\nb\n');
    await reader.done;
    expect(got).toEqual(['a', 'b']);
  });
});
