import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMasker, MASK } from '../../src/runner/mask.js';
import {
  isSkipped,
  LogReader,
  linesOfBlock,
  type OutputLine,
  readSessionLog,
  renderSessionLog,
  SessionLog,
  TRIMMED_REASON,
} from '../../src/runner/session-log.js';
import { cutBytes, LineAssembler, SessionOutput } from '../../src/runner/session-output.js';

interface Segment {
  text: string;
  end: boolean;
  cont: boolean;
}

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function logPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-log-'));
  dirs.push(dir);
  return join(dir, 's.log');
}
/** A log file's records with their times left out (the same for logs written at different moments). */
const records = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .map((r) => r.replace(/^(\d+) \S+ /, '$1 TIME '));

const size = (path: string) => {
  let total = 0;
  for (const file of [path, `${path}.1`]) {
    try {
      total += statSync(file).size;
    } catch {
      // Not there.
    }
  }
  return total;
};

describe('SessionLog', () => {
  it('numbers lines, records stream and time, and writes them asynchronously', async () => {
    const path = logPath();
    const log = new SessionLog(path, 1_000_000);
    const first = log.append('hello');
    log.append('oops', { stream: 'stderr' });
    log.append('agentd: note', { stream: 'agentd' });
    log.append('continued', { cont: true });
    expect(first).toMatchObject({ seq: 1, stream: 'stdout', text: 'hello' });
    expect(Date.parse(first.time)).toBeGreaterThan(0);
    // Nothing is written in the same turn: appending never waits for the disk...
    expect(() => readFileSync(path)).toThrow();
    // ...but a reader still gets everything.
    expect(readSessionLog(path).map((e) => (isSkipped(e) ? '' : e.text))).toEqual([
      'hello',
      'oops',
      'agentd: note',
      'continued',
    ]);
    await log.close();
    expect(readFileSync(path, 'utf8')).toMatch(
      /^1 \S+Z out hello\n2 \S+ err oops\n3 \S+ agentd agentd: note\n4 \S+ out\+ continued\n$/,
    );
    // A log opened again (an adopted session) goes on from the next number; agentd's own lines and
    // continuations are not container lines.
    const again = new SessionLog(path, 1_000_000);
    expect(again.writtenLines()).toEqual({ stdout: 1, stderr: 1 });
    expect(again.append('more').seq).toBe(5);
    await again.close();
  });

  it('picks up a log of an older agentd (plain lines) where it ends', async () => {
    const path = logPath();
    writeFileSync(path, 'a\nb\n');
    const log = new SessionLog(path, 1_000_000);
    expect(log.writtenLines()).toEqual({ stdout: 2, stderr: 0 });
    expect(log.append('c').seq).toBe(3);
    await log.close();
    expect(readSessionLog(path).map((e) => (isSkipped(e) ? '' : e.text))).toEqual(['a', 'b', 'c']);
    expect(renderSessionLog(path)).toBe('a\nb\nc\n');
  });

  it('stays within its bound however much is written, and says what it dropped', async () => {
    const path = logPath();
    const log = new SessionLog(path, 8192);
    for (let i = 1; i <= 5000; i++) {
      log.append(`line ${i} ${'x'.repeat(i % 50)}`);
      if (i % 100 === 0) await log.flushed();
    }
    await log.close();
    expect(size(path)).toBeLessThanOrEqual(8192);
    const entries = readSessionLog(path);
    const first = entries[0];
    expect(first && isSkipped(first) && first.reason).toBe(TRIMMED_REASON);
    const lines = entries.filter((e): e is OutputLine => !isSkipped(e));
    expect(lines.at(-1)?.text).toMatch(/^line 5000 /);
    // Contiguous from the first kept line to the last.
    expect(lines.every((l, i) => i === 0 || l.seq === (lines[i - 1] as OutputLine).seq + 1)).toBe(true);
    expect(new SessionLog(path, 8192).writtenLines()).toBeUndefined();
  });

  it('reads after a sequence number, reporting a gap as one', async () => {
    const path = logPath();
    const log = new SessionLog(path, 4096);
    for (let i = 1; i <= 300; i++) log.append(`l${i}`);
    await log.close();
    const all = readSessionLog(path);
    const firstKept = all.find((e): e is OutputLine => !isSkipped(e))?.seq ?? 0;
    expect(firstKept).toBeGreaterThan(1);
    const after = readSessionLog(path, 5);
    expect(after[0]).toMatchObject({ fromSeq: 6, toSeq: firstKept - 1, count: firstKept - 6 });
    expect(readSessionLog(path, 299)).toEqual([expect.objectContaining({ seq: 300, text: 'l300' })]);
    expect(readSessionLog(path, 300)).toEqual([]);
  });

  it('drops unwritten what the bound cannot keep, and keeps the newest in its two halves', async () => {
    const path = logPath();
    const log = new SessionLog(path, 65_536);
    const line = 'y'.repeat(1000);
    // 5 MB in one turn: nothing is written meanwhile, and the log does not hold on to it.
    for (let i = 1; i <= 5000; i++) {
      log.append(`${i} ${line}`);
      expect(log.backlogged).toBe(false);
    }
    await log.close();
    expect(size(path)).toBeLessThanOrEqual(65_536);
    // Both halves: more than half the bound is kept.
    expect(size(path)).toBeGreaterThan(32_768 + 16_384);
    const entries = readSessionLog(path);
    expect(entries[0]).toMatchObject({ fromSeq: 1, reason: TRIMMED_REASON });
    const lines = entries.filter((e): e is OutputLine => !isSkipped(e));
    expect(lines.at(-1)).toMatchObject({ seq: 5000, text: `5000 ${line}` });
    expect(lines.every((l, i) => i === 0 || l.seq === (lines[i - 1] as OutputLine).seq + 1)).toBe(true);
  });

  it('counts in its gap note the lines the bound drops unwritten while it cannot write', async () => {
    const path = logPath();
    // Something that is no file stands where the log goes: every write fails, as on a full state dir.
    mkdirSync(path);
    let missedByWrites = 0;
    const log = new SessionLog(path, 4096, (n) => {
      missedByWrites += n;
    });
    log.append('first lost');
    await log.flushed();
    expect(log.missing).toEqual({ lines: 1, bytes: 11 });
    let lines = 1;
    let bytes = 11;
    const appendLine = (text: string) => {
      log.append(text);
      lines++;
      bytes += Buffer.byteLength(text) + 1;
    };
    const appendBlock = (text: string) => {
      const block = Buffer.from(text.repeat(20));
      log.appendBlock(block, 20, 'stderr');
      lines += 20;
      bytes += block.length;
    };
    for (let round = 0; round < 3; round++) {
      // Several times the bound in one turn, blocks and records: the oldest are dropped unwritten.
      for (const half of [0, 1]) {
        appendBlock(`block ${round}.${half} é\n`);
        for (let i = 0; i < 250; i++) appendLine(`r${round}.${half} ${i} é ${'x'.repeat(30)}`);
      }
      expect(log.dropping).toBe(true);
      await log.flushed();
    }
    // Every line since the first failure is missing, written or dropped: the note says so.
    expect(log.missing).toEqual({ lines, bytes });
    // The metric counts the lines whose write failed, not those the bound drops with room as well.
    expect(missedByWrites).toBeGreaterThan(0);
    expect(missedByWrites).toBeLessThan(lines);

    // Room again: the note comes before the next line, counting all the lines it stands for.
    rmSync(path, { recursive: true });
    const next = log.append('room again');
    await log.close();
    const [skipped, line, ...rest] = readSessionLog(path);
    expect(rest).toEqual([]);
    expect(skipped).toMatchObject({ fromSeq: 1, toSeq: lines, count: lines });
    expect(skipped && isSkipped(skipped) && skipped.reason).toMatch(
      new RegExp(`^\\[agentd: ${lines} line\\(s\\), ${bytes} bytes of output are missing here: `),
    );
    expect(line).toMatchObject({ seq: next.seq, text: 'room again' });
  });

  it('asks its writer to wait while more is unwritten than it can drop', async () => {
    const path = logPath();
    const log = new SessionLog(path, 4096);
    let drained = 0;
    log.onDrain(() => drained++);
    // 64 Ki empty lines at once: one block, far more as records than the bound and the buffer.
    log.appendBlock(Buffer.alloc(65_536, 10), 65_536, 'stdout');
    expect(log.backlogged).toBe(true);
    await log.flushed();
    expect(log.backlogged).toBe(false);
    expect(drained).toBe(1);
    await log.close();
    expect(size(path)).toBeLessThanOrEqual(4096);
    expect(readSessionLog(path).at(-1)).toMatchObject({ seq: 65_536, text: '' });
  });

  it('hands a reader what is not written yet a piece at a time, as it stood when the file was read', async () => {
    const path = logPath();
    const log = new SessionLog(path, 1_000_000);
    for (let i = 1; i <= 2000; i++) log.append(`line ${i} ${'x'.repeat(100)}`);
    log.appendBlock(Buffer.from('b1\nb2\n'), 2, 'stderr');
    const reader = new LogReader(path);
    const seqs: number[] = [];
    let calls = 0;
    for (let entries = reader.next(8192); entries !== undefined; entries = reader.next(8192)) {
      calls++;
      expect(entries.length).toBeLessThanOrEqual(100);
      for (const entry of entries) if (!isSkipped(entry)) seqs.push(entry.seq);
      // Appended after the reader took its view: not in this reader.
      log.append('later');
    }
    expect(calls).toBeGreaterThan(20);
    expect(seqs).toEqual(Array.from({ length: 2002 }, (_, i) => i + 1));
    await log.close();
  });

  it('logs a block of lines as the same records as line by line, numbered across digit boundaries', async () => {
    const byLine = logPath();
    const byBlock = logPath();
    const lines = Array.from({ length: 120 }, (_, i) => (i % 7 === 0 ? '' : `line ${i} é€ ${'z'.repeat(i)}`));
    const a = new SessionLog(byLine, 1_000_000);
    const b = new SessionLog(byBlock, 1_000_000);
    for (let i = 0; i < 5; i++) {
      a.append(`before ${i}`);
      b.append(`before ${i}`);
    }
    for (const line of lines) a.append(line);
    const block = b.appendBlock(Buffer.from(lines.map((l) => `${l}\n`).join('')), 120, 'stdout');
    expect(block).toMatchObject({ seq: 6, count: 120, stream: 'stdout' });
    expect(linesOfBlock(block).map((l) => [l.seq, l.text])).toEqual(lines.map((l, i) => [i + 6, l]));
    a.append('after', { stream: 'stderr' });
    b.append('after', { stream: 'stderr' });
    // Readers get the unwritten block too.
    expect(readSessionLog(byBlock).map((e) => (isSkipped(e) ? '' : `${e.seq} ${e.text}`))).toEqual(
      readSessionLog(byLine).map((e) => (isSkipped(e) ? '' : `${e.seq} ${e.text}`)),
    );
    await a.close();
    await b.close();
    expect(records(byBlock)).toEqual(records(byLine));
    expect(new SessionLog(byBlock, 1_000_000).writtenLines()).toEqual({ stdout: 125, stderr: 1 });
  });

  it('encodes a block as records without copying each line apart (what a flood’s writes keep)', async () => {
    // Three Buffer.copy calls a line (number, time and stream, text), some 190 ns each, made encoding the
    // megabyte a flood's write keeps cost as much as finding the lines of all the output (bench/findings.md).
    const path = logPath();
    const log = new SessionLog(path, 10_000_000);
    const lines = Array.from({ length: 1000 }, (_, i) => `line ${i} ✓ ${'x'.repeat(i % 90)}`);
    log.appendBlock(Buffer.from(lines.map((l) => `${l}\n`).join('')), 1000, 'stdout');
    const copies = vi.spyOn(Buffer.prototype, 'copy');
    try {
      await log.flushed();
      expect(copies.mock.calls.length).toBeLessThan(10);
    } finally {
      copies.mockRestore();
    }
    await log.close();
    expect(readSessionLog(path).map((e) => (isSkipped(e) ? '' : `${e.seq} ${e.stream} ${e.text}`))).toEqual(
      lines.map((l, i) => `${i + 1} stdout ${l}`),
    );
  });

  it('keeps a copy of a block, not the bytes it was given (the pipe chunk is reused or freed)', async () => {
    const path = logPath();
    const log = new SessionLog(path, 1_000_000);
    const chunk = Buffer.from('one\ntwo\n');
    const block = log.appendBlock(chunk, 2, 'stdout');
    expect(block.bytes).toBe(chunk);
    chunk.fill(0x78);
    const unwritten = readSessionLog(path).map((e) => (isSkipped(e) ? '' : e.text));
    expect(unwritten).toEqual(['one', 'two']);
    await log.close();
    expect(readSessionLog(path).map((e) => (isSkipped(e) ? '' : e.text))).toEqual(['one', 'two']);
  });

  it('logs single lines between blocks (a pipe chunk ending mid-line) as line by line, before and after they are written', async () => {
    const byLine = logPath();
    const mixed = logPath();
    const a = new SessionLog(byLine, 1_000_000);
    const b = new SessionLog(mixed, 1_000_000);
    const expected: string[] = [];
    for (let chunk = 0; chunk < 50; chunk++) {
      const lines = Array.from({ length: 3 }, (_, i) => `chunk ${chunk} line ${i} ${'y'.repeat(chunk)}`);
      for (const line of lines) a.append(line);
      b.appendBlock(Buffer.from(lines.map((l) => `${l}\n`).join('')), 3, 'stdout');
      // The line the next chunk finishes; multi-byte characters, and now and then one larger than a slab.
      const between = chunk % 10 === 9 ? `long ${'€'.repeat(25_000)}` : `between ${chunk} é€😀`;
      a.append(between, { stream: chunk % 2 === 0 ? 'stdout' : 'stderr' });
      b.append(between, { stream: chunk % 2 === 0 ? 'stdout' : 'stderr' });
      expected.push(...lines, between);
    }
    const texts = (path: string) =>
      readSessionLog(path).map((e) => (isSkipped(e) ? '' : `${e.seq} ${e.stream} ${e.text}`));
    // Unwritten, as a reader sees them.
    expect(texts(mixed)).toEqual(texts(byLine));
    expect(texts(mixed).map((t) => t.replace(/^\d+ \S+ /, ''))).toEqual(expected);
    await a.close();
    await b.close();
    expect(records(mixed)).toEqual(records(byLine));
    expect(records(mixed)).toHaveLength(expected.length + 1);
  });
});

describe('LineAssembler', () => {
  const assemble = (pieces: [string, boolean][], guards: string[]) => {
    const out: Segment[] = [];
    const assembler = new LineAssembler(
      () => guards,
      (text, end, cont) => out.push({ text, end, cont }),
    );
    for (const [text, end] of pieces) assembler.push(text, end);
    return out;
  };

  it('passes whole lines as they are', () => {
    expect(assemble([['a', true]], ['secret'])).toEqual([{ text: 'a', end: true, cont: false }]);
  });

  it('never cuts a long line inside a guarded value', () => {
    const secret = 'S3CRET-VALUE';
    const text = `${'a'.repeat(95)}${secret}${'b'.repeat(200)}`;
    const pieces: [string, boolean][] = [];
    for (let at = 0; at < text.length; at += 16)
      pieces.push([text.slice(at, at + 16), at + 16 >= text.length]);
    const out = assemble(pieces, [secret]);
    expect(out.map((s) => s.text).join('')).toBe(text);
    expect(out.some((s) => s.text.includes(secret))).toBe(true);
    expect(out.slice(1).every((s) => s.cont)).toBe(true);
    expect(out.at(-1)?.end).toBe(true);
  });
});

/**
 * One long line fed to a SessionOutput the way the output reader hands it on (pieces of 64 KiB, the
 * last ending the line): the lines it logged.
 */
async function throughReader(values: string[], text: string): Promise<OutputLine[]> {
  const lines: OutputLine[] = [];
  const out = new SessionOutput(
    { logFile: logPath(), logMaxBytes: 10_000_000, onLine: (l) => lines.push(l) },
    createMasker(values),
  );
  const { handler } = out.reader((piece, _end, cont, stream, masked) =>
    out.write(piece, cont, stream, masked),
  );
  for (let at = 0; at < text.length; at += 65536)
    handler(text.slice(at, at + 65536), at + 65536 >= text.length, 'stdout');
  await out.close();
  return lines;
}

describe('SessionOutput', () => {
  it('masks a value even where the reader cut its line, and cuts lines at the maximum', async () => {
    const path = logPath();
    const lines: OutputLine[] = [];
    const out = new SessionOutput(
      { logFile: path, logMaxBytes: 1_000_000, onLine: (l) => lines.push(l) },
      createMasker(['value-to-hide-0123456789']),
    );
    const { handler } = out.reader((text, _end, cont) => out.write(text, cont));
    // 200 KiB on one line, the value exactly where the reader cuts at 64 KiB.
    const text = `${'a'.repeat(65536 - 10)}value-to-hide-0123456789${'b'.repeat(140_000)}`;
    for (let at = 0; at < text.length; at += 65536) {
      const piece = text.slice(at, at + 65536);
      handler(piece, at + 65536 >= text.length, 'stdout');
    }
    await out.close();
    const joined = lines.map((l) => l.text).join('');
    expect(joined).not.toContain('value-to-hide');
    expect(joined).toContain(MASK);
    for (const line of lines) expect(Buffer.byteLength(line.text)).toBeLessThanOrEqual(65536);
    expect(lines[0]?.cont).toBeUndefined();
    expect(lines.slice(1).every((l) => l.cont)).toBe(true);
  });

  // A value in a form only a view of the line shows (percent-encoded, coloured inside), or base64 inside
  // a longer base64 text, where the reader cuts a 200 KiB line at 64 KiB: masked whole, nothing of it
  // in clear on either side of the cut.
  it.each([
    [
      'percent-encoded',
      (v: string) => [...Buffer.from(v)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join(''),
    ],
    ['with colours inside', (v: string) => [...v].map((c) => `\x1b[3${c.charCodeAt(0) % 8}m${c}`).join('')],
    [
      'percent-encoded in part',
      (v: string) => `${v.slice(0, 5)}${encodeURIComponent(v.slice(5)).replaceAll('-', '%2D')}`,
    ],
  ])('masks a value %s wherever the reader cuts its line', async (_name, encode) => {
    const value = 'value-to-hide-0123456789';
    const printed = encode(value);
    for (const offset of [1, 7, Math.floor(printed.length / 2), printed.length - 2]) {
      const text = `${'a'.repeat(65536 - offset)}${printed}${'b'.repeat(140_000)}`;
      const lines = await throughReader([value], text);
      const joined = lines.map((l) => l.text).join('');
      // As the line is masked whole, never cut.
      expect(joined).toBe(createMasker([value])(text));
      expect(joined).toContain(`${MASK}${'b'.repeat(140_000)}`);
      for (const line of lines) expect(Buffer.byteLength(line.text)).toBeLessThanOrEqual(65536);
    }
  });

  it('masks a value longer than a piece wherever the reader cuts its line', async () => {
    const value = Array.from(
      { length: 70_000 },
      (_, i) => 'abcdefghijklmnopqrstuvwxyz0123456789'[(i * 7) % 36],
    ).join('');
    const text = `${'x'.repeat(62_000)}${value}${'y'.repeat(100_000)}`;
    const lines = await throughReader([value], text);
    expect(lines.map((l) => l.text).join('')).toBe(`${'x'.repeat(62_000)}${MASK}${'y'.repeat(100_000)}`);
  });

  it('masks a line that repeats a value over and over without a break, across every cut', async () => {
    const text = `x${'a'.repeat(300_000)}y${'b%41'.repeat(60_000)}z`;
    const lines = await throughReader(['aaaaaaaa', 'b%41b%41b%41b%41'], text);
    const joined = lines.map((l) => l.text).join('');
    expect(joined.replaceAll('*', '')).toBe('xyz');
  });

  it('searches a block for a long value’s thousands of forms in one pass, and declines one that holds any', async () => {
    // A 32 KB value (a CA bundle, a kubeconfig) has about 3,800 forms, the lines of its wrapped base64:
    // a search of each block for each of them made 50 MB of output cost 17 s of the daemon's CPU.
    let seed = 7;
    const value = Array.from({ length: 32 * 1024 }, () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return 'abcdefghijklmnopqrstuvwxyz0123456789'[seed % 36];
    }).join('');
    const mask = createMasker([value]);
    expect(mask.forms.length).toBeGreaterThan(3000);
    const out = new SessionOutput({ logFile: logPath(), logMaxBytes: 10_000_000, onLine: () => {} }, mask);
    const plain = Buffer.from(`${'an ordinary line of build output, nothing secret in it\n'.repeat(1000)}`);
    const searches = vi.spyOn(Buffer.prototype, 'indexOf');
    try {
      expect(out.writeBlock(plain, 1000, 'stdout')).toBe(true);
      expect(searches.mock.calls.length).toBeLessThan(50);
    } finally {
      searches.mockRestore();
    }
    // Any one form in it (a line of its base64 wrapped at 76) still sends the block line by line.
    const wrapped = Buffer.from(value)
      .toString('base64')
      .slice(76 * 200, 76 * 201);
    expect(out.writeBlock(Buffer.from(`ok\n${wrapped}\n`), 2, 'stdout')).toBe(false);
    await out.close();
  });

  it('searches a block for a token’s few forms natively, one Buffer.indexOf for all that start with a byte it lacks', async () => {
    // NeedleSet's pass in JavaScript costs some 3.6 ms per MB, a native search of a form 0.01 to 0.2:
    // for every session it raised the daemon's CPU per MB of output from 5.5 to 7.5 ms (output-heavy bench).
    // And one native scan for each form and each of the lines' hints was most of the rest of a block's
    // search: on the output-heavy bench's lines, none of their first bytes is there (bench/findings.md).
    const mask = createMasker(['bench-token-0123456789abcdef']);
    const out = new SessionOutput({ logFile: logPath(), logMaxBytes: 10_000_000, onLine: () => {} }, mask);
    const forms = mask.forms.filter((form) => !/[\r\n]/.test(form)).map((form) => Buffer.from(form));
    const searches = vi.spyOn(Buffer.prototype, 'indexOf');
    try {
      const plain = Buffer.from(`${'an ordinary line of build output, nothing secret in it\n'.repeat(1000)}`);
      expect(out.writeBlock(plain, 1000, 'stdout')).toBe(true);
      // Each form is looked for natively: a part of it, or a byte it holds (the first of such a part).
      const searched = searches.mock.calls.map(([needle]) => needle);
      for (const form of forms)
        expect(
          searched.some((needle) =>
            Buffer.isBuffer(needle)
              ? form.includes(needle)
              : typeof needle === 'number' && form.includes(needle),
          ),
          form.toString(),
        ).toBe(true);
      // A block of none of those bytes: far fewer scans than forms and hints (25 before, one each).
      searches.mockClear();
      const xs = Buffer.from(`${'x'.repeat(99)}\n`.repeat(600));
      expect(out.writeBlock(xs, 600, 'stdout')).toBe(true);
      expect(searches.mock.calls.length).toBeLessThan(forms.length);
    } finally {
      searches.mockRestore();
    }
    expect(out.writeBlock(Buffer.from('ok bench-token-0123456789abcdef\n'), 1, 'stdout')).toBe(false);
    await out.close();
  });

  it('takes whole lines at once only when nothing in them is masked and they are valid UTF-8', async () => {
    const path = logPath();
    const lines: OutputLine[] = [];
    const value = 'first-line-secret\nsecond-line-secret';
    const out = new SessionOutput(
      { logFile: path, logMaxBytes: 1_000_000, onLine: (l) => lines.push(l) },
      createMasker([value]),
    );
    const block = (text: string | Buffer) => {
      const bytes = Buffer.from(text);
      return out.writeBlock(bytes, bytes.toString('latin1').split('\n').length - 1, 'stdout');
    };
    expect(block('plain\ntext é€\n')).toBe(true);
    // Every form of the value that fits on a line, and bytes that are not UTF-8, are declined: those
    // lines go through the masker line by line.
    for (const form of [
      'first-line-secret',
      'second-line-secret',
      Buffer.from(value).toString('base64'),
      Buffer.from(value).toString('base64').replace(/=+$/, ''),
      encodeURIComponent(value),
      JSON.stringify(value).slice(1, -1),
    ])
      expect(block(`ok\nbefore ${form} after\n`), form).toBe(false);
    expect(block(Buffer.from([0x61, 0xff, 0x0a]))).toBe(false);
    // What only a view of a line shows: a form broken by a colour, or encoded only in part.
    expect(block('first-\x1b[1mline-secret\n')).toBe(false);
    expect(block('first%2Dline-secret\n')).toBe(false);
    // The start of the value's base64 ending a line: wrapped base64 of a longer text.
    expect(block(`${'QUJD'.repeat(10)}${Buffer.from(value).toString('base64').slice(0, 12)}\n`)).toBe(false);
    expect(block('more\n')).toBe(true);
    await out.close();
    expect(lines.map((l) => [l.seq, l.text])).toEqual([
      [1, 'plain'],
      [2, 'text é€'],
      [3, 'more'],
    ]);
    expect(readSessionLog(path).map((e) => (isSkipped(e) ? '' : e.text))).toEqual([
      'plain',
      'text é€',
      'more',
    ]);
  });

  it('keeps going when whoever it hands lines to throws', async () => {
    const out = new SessionOutput(
      {
        logFile: logPath(),
        logMaxBytes: 4096,
        onLine: () => {
          throw new Error('broken follower');
        },
      },
      createMasker([]),
    );
    expect(() => out.write('still logged')).not.toThrow();
    await out.close();
    expect(readSessionLog(out.log.path)).toEqual([expect.objectContaining({ text: 'still logged' })]);
  });

  it('cuts text at character boundaries', () => {
    const pieces = cutBytes('é'.repeat(10), 5);
    expect(pieces.join('')).toBe('é'.repeat(10));
    for (const piece of pieces) expect(Buffer.byteLength(piece)).toBeLessThanOrEqual(5);
  });
});
