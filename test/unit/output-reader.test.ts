import { PassThrough } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { readableSource } from '../../src/adapters/output-channel.js';
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

  it('keeps a copy of a line a chunk ends in, not a view of the chunk (read into again by its source)', () => {
    const splitter = new LineSplitter(100);
    const chunk = Buffer.from('a\nbeginning of a ');
    expect([...splitter.split(chunk)]).toEqual([line('a')]);
    // The source reads the next bytes into the same buffer.
    chunk.fill('#');
    expect([...splitter.split(Buffer.from('line\n'))]).toEqual([line('beginning of a line')]);
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
    const reader = new OutputReader(readableSource(input), (text) => got.push(text), {
      maxLineBytes: 64,
      piecesPerTurn: 10,
    });
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
      readableSource(input),
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

describe('whole lines at once', () => {
  /** Every chunk through block() (taken when `take` says so) and next(): the lines as they come out. */
  function viaBlocks(max: number, chunks: (string | Buffer)[], take: (b: Buffer) => boolean = () => true) {
    const splitter = new LineSplitter(max);
    const out: (OutputPiece | { block: string })[] = [];
    for (const chunk of chunks) {
      splitter.feed(Buffer.from(chunk));
      for (;;) {
        const block = splitter.block();
        if (block !== undefined && take(block)) {
          out.push({ block: block.toString('utf8') });
          splitter.took(block);
          continue;
        }
        const text = splitter.next();
        if (text === undefined) break;
        out.push({ text, end: splitter.end });
      }
    }
    const rest = splitter.flush();
    if (rest) out.push(rest);
    return out;
  }
  /** The same output as lines, blocks split into their lines. */
  const asLines = (out: (OutputPiece | { block: string })[]) =>
    out.flatMap((e) => ('block' in e ? e.block.slice(0, -1).split('\n').map(line) : [e]));

  it('offers the complete lines of a chunk, from a line start, and the rest comes as before', () => {
    const chunks = ['a\nbb\ncc', 'c\ndd\nee\nf', 'f\r\ng\nh\n', 'x'.repeat(10), 'y\nzz\n'];
    const out = viaBlocks(8, chunks);
    expect(out).toEqual([
      { block: 'a\nbb\n' },
      // The line held from the chunk before comes on its own, then the rest at once.
      line('ccc'),
      { block: 'dd\nee\n' },
      // A \r: the lines before it only.
      line('ff'),
      { block: 'g\nh\n' },
      part('xxxxxxxx'),
      // The rest of a cut line is never a block's start.
      line('xxy'),
      { block: 'zz\n' },
    ]);
    expect(asLines(out)).toEqual(splitAll(8, chunks));
  });

  it('ends a block before a line longer than the maximum', () => {
    const chunks = [`ab\ncd\n${'x'.repeat(20)}\nef\n`];
    const out = viaBlocks(8, chunks);
    expect(out[0]).toEqual({ block: 'ab\ncd\n' });
    expect(asLines(out)).toEqual(splitAll(8, chunks));
  });

  it('a declined block comes line by line, and is not offered again in that chunk', () => {
    const offered: string[] = [];
    const chunks = ['a\nb\nc\n', 'd\ne\n'];
    const out = viaBlocks(8, chunks, (b) => {
      offered.push(b.toString());
      return false;
    });
    expect(offered).toEqual(['a\nb\nc\n', 'd\ne\n']);
    expect(out).toEqual(splitAll(8, chunks));
  });

  it('the reader hands blocks and pieces on in order', async () => {
    const input = new PassThrough();
    const got: string[] = [];
    const reader = new OutputReader(
      readableSource(input),
      (text, end) => got.push(`${end ? 'line' : 'part'} ${text}`),
      {
        maxLineBytes: 64,
        onBlock: (bytes) => {
          // A block with a `!` in it is declined (as a masked value would be).
          if (bytes.includes('!')) return false;
          got.push(`block ${bytes.toString()}`);
          return true;
        },
      },
    );
    input.write('one\ntwo\nthr');
    input.write('ee\nfour!\nfive\n');
    input.end('six');
    await reader.done;
    expect(got).toEqual(['block one\ntwo\n', 'line three', 'line four!', 'line five', 'line six']);
  });
});

describe('OutputReader budget', () => {
  it('counts the lines of a block against the pieces of a turn, across chunks', async () => {
    const input = new PassThrough();
    const turns: number[] = [0];
    let counting = true;
    const count = async () => {
      while (counting) {
        await nextTurn();
        turns.push(0);
      }
    };
    const counter = count();
    const reader = new OutputReader(readableSource(input), () => {}, {
      maxLineBytes: 64,
      piecesPerTurn: 100,
      onBlock: (bytes, lines) => {
        expect(bytes.toString().split('\n').length - 1).toBe(lines);
        turns[turns.length - 1] = (turns.at(-1) as number) + lines;
        return true;
      },
    });
    // Ten chunks of 60 lines at once: blocks end where the turn's budget does.
    for (let i = 0; i < 10; i++) input.write('y\n'.repeat(60));
    input.end();
    await reader.done;
    counting = false;
    await counter;
    expect(turns.reduce((a, b) => a + b, 0)).toBe(600);
    expect(Math.max(...turns)).toBeLessThanOrEqual(100);
  });
});

describe('LineSplitter.block', () => {
  it('counts its lines and stops at maxLines', () => {
    const splitter = new LineSplitter(64);
    splitter.feed(Buffer.from('a\nb\nc\nd\ne'));
    const first = splitter.block(3);
    expect([first?.toString(), splitter.blockLines]).toEqual(['a\nb\nc\n', 3]);
    splitter.took(first as Buffer);
    const second = splitter.block(3);
    expect([second?.toString(), splitter.blockLines]).toEqual(['d\n', 1]);
    splitter.took(second as Buffer);
    expect(splitter.block()).toBeUndefined();
    expect(splitter.next()).toBeUndefined();
    expect(splitter.flush()).toEqual(line('e'));
  });
});
