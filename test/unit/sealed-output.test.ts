/**
 * What a sealed record keeps of an agent's output archive (src/adapters/sealed-records.ts), for archives
 * made to hurt: one that costs the daemon time after its bound, names that act on a terminal, special
 * mode bits, and one file larger than the whole bound before the others.
 */
import { lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type OutputSummary, SealedRecords } from '../../src/adapters/sealed-records.js';
import { makeTempDir } from '../helpers/resources.js';

const ID = '0123456789abcdef';

/** One tar header: ustar, with a pax header before it when the name does not fit in 100 bytes. */
function header(name: string, options: { type?: string; size?: number; mode?: number } = {}): Buffer {
  const { type = '0', size = 0, mode = 0o644 } = options;
  const bytes = Buffer.from(name);
  if (bytes.length > 100) {
    const record = (length: number) => `${length} path=${name}\n`;
    let length = Buffer.byteLength(record(0));
    while (Buffer.byteLength(record(length)) !== length) length = Buffer.byteLength(record(length));
    const pax = Buffer.from(record(length));
    return Buffer.concat([
      header('./PaxHeaders/x', { type: 'x', size: pax.length }),
      pad(pax),
      header('./long', { type, size, mode }),
    ]);
  }
  const block = Buffer.alloc(512);
  bytes.copy(block, 0);
  block.write(`${mode.toString(8).padStart(7, '0')}\0`, 100);
  block.write('0001750\0', 108);
  block.write('0001750\0', 116);
  block.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  block.write('00000000000\0', 136);
  block.write('        ', 148);
  block.write(type, 156);
  block.write('ustar\0', 257);
  block.write('00', 263);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return block;
}

function pad(data: Buffer): Buffer {
  const padded = Buffer.alloc(Math.ceil(data.length / 512) * 512);
  data.copy(padded);
  return padded;
}

function file(name: string, content: string | Buffer = '', mode = 0o644): Buffer {
  const data = typeof content === 'string' ? Buffer.from(content) : content;
  return Buffer.concat([header(name, { size: data.length, mode }), pad(data)]);
}

function directory(name: string, mode = 0o755): Buffer {
  return header(name, { type: '5', mode });
}

/** A whole archive (with tar's two zero blocks at its end) written to `dir/name`. */
function archive(dir: string, name: string, entries: Buffer[]): string {
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([...entries, Buffer.alloc(1024)]));
  return path;
}

async function seal(
  dir: string,
  path: string,
  limit: number,
  beforeSealed?: (out: string) => void,
): Promise<{ out: string; output: OutputSummary; ms: number }> {
  const records = new SealedRecords(join(dir, 'records'));
  const out = join(records.dirOf('demo', ID), 'out');
  const started = performance.now();
  const { output } = await records.seal({
    agent: 'demo',
    sessionId: ID,
    archive: path,
    archiveLimit: limit,
    // Called once the archive is unpacked, before the record is sealed (files 0444, directories 0555).
    json: (summary) => {
      beforeSealed?.(out);
      return { id: ID, output: summary };
    },
  });
  return { out, output, ms: performance.now() - started };
}

/** Every path under `dir` with its mode, depth first. */
function modes(dir: string, prefix = ''): [string, number][] {
  return readdirSync(dir).flatMap((name): [string, number][] => {
    const stat = lstatSync(join(dir, name));
    const entry: [string, number] = [`${prefix}${name}`, stat.mode & 0o7777];
    return stat.isDirectory() ? [entry, ...modes(join(dir, name), `${prefix}${name}/`)] : [entry];
  });
}

describe('sealed output', () => {
  it('stops reading an archive at its 10,000th entry: 60,000 files 60 directories deep cost about what 10,000 flat files cost', async () => {
    const dir = makeTempDir('agentd-unit-output-');
    const limit = 64 * 1024 * 1024;
    // Baseline: 10,000 empty files in out/ itself, all kept.
    const flat = archive(
      dir,
      'flat.tar',
      Array.from({ length: 10_000 }, (_, i) => file(`./f${i}`)),
    );
    // As the audit's agent made it: 60 nested directories of 15-character names, 60,000 empty files in
    // the deepest (each path about 970 characters: a pax header each).
    const deepDirs = Array.from({ length: 60 }, (_, i) => `d${String(i).padStart(14, '0')}`);
    const chain = deepDirs.map((_, i) => `./${deepDirs.slice(0, i + 1).join('/')}/`);
    const deep = archive(dir, 'deep.tar', [
      ...chain.map((path) => directory(path)),
      ...Array.from({ length: 60_000 }, (_, i) => file(`${chain[chain.length - 1]}f${i}`)),
    ]);
    const flatRun = await seal(join(dir, 'flat'), flat, limit);
    const deepRun = await seal(join(dir, 'deep'), deep, limit);
    console.log(
      `sealing 10,000 flat files: ${flatRun.ms.toFixed(0)} ms; 60,000 files 60 deep: ${deepRun.ms.toFixed(0)} ms`,
    );
    expect(flatRun.output).toMatchObject({ files: 10_000, truncated: false, skipped: 0 });
    // 60 directories and 9,940 files: the bound, and nothing read after it.
    expect(deepRun.output).toMatchObject({ files: 9_940, truncated: true, skipped: 0 });
    expect(readdirSync(join(deepRun.out, ...deepDirs))).toHaveLength(9_940);
    // Both keep 10,000 entries. Reading the 50,000 after the bound, checking every ancestor of every
    // entry, and tar making each file's 60 directories one by one, it took 8 to 15 times the flat one
    // here (45 s); now about twice.
    expect(deepRun.ms).toBeLessThan(6 * flatRun.ms);
  }, 300_000);

  it('leaves out names with control or invisible format characters, and what is under them', async () => {
    const dir = makeTempDir('agentd-unit-output-');
    const bad = [
      'esc\x1b]0;PWNED\x07\x1b[31mred',
      'nl\nname',
      'tab\tname',
      'del\x7fname',
      'c1\u009bname',
      'bidi\u202Etxt.exe',
      'isolate\u2066x',
      'zero\u200Bwidth',
      'line\u2028sep',
      'bom\uFEFFname',
      'alm\u061Cname',
      'wj\u2060name',
      // Format characters past the first list: tag characters (hidden ASCII), deprecated ones, U+180E,
      // an interlinear annotation, a soft hyphen.
      'tag\u{E0041}\u{E0042}name',
      'dep\u206Ename',
      'mvs\u180Ename',
      'ann\uFFF9name',
      'shy\u00ADname',
    ];
    const path = archive(dir, 'out.tar', [
      ...bad.map((name) => file(`./${name}`, 'x')),
      directory('./dir\x1b[2J/'),
      file('./dir\x1b[2J/inner.txt', 'x'),
      file('./ok/caf\u00e9 \u65e5\u672c.txt', 'fine'),
    ]);
    const { out, output } = await seal(dir, path, 1024 * 1024);
    expect(modes(out).map(([name]) => name)).toEqual(['ok', 'ok/caf\u00e9 \u65e5\u672c.txt']);
    expect(output).toMatchObject({ files: 1, skipped: bad.length + 2, truncated: false });
    expect(output.damaged).toBeUndefined();
  });

  it('never writes a setuid, setgid or sticky bit, nor a group or world write, even before the seal', async () => {
    const dir = makeTempDir('agentd-unit-output-');
    const path = archive(dir, 'out.tar', [
      file('./setuid', 'x', 0o6777),
      directory('./sticky/', 0o3777),
      file('./sticky/inner', 'y', 0o4777),
      file('./implied/parent/file', 'z', 0o2777),
    ]);
    let unsealed: [string, number][] = [];
    const { out, output } = await seal(dir, path, 1024 * 1024, (at) => {
      unsealed = modes(at);
    });
    expect(output).toMatchObject({ files: 3, skipped: 0 });
    expect(unsealed.map(([name]) => name).sort()).toEqual([
      'implied',
      'implied/parent',
      'implied/parent/file',
      'setuid',
      'sticky',
      'sticky/inner',
    ]);
    for (const [name, mode] of unsealed) expect(mode & 0o7022, `${name} ${mode.toString(8)}`).toBe(0);
    // Then sealed as ever: files 0444, directories 0555.
    for (const [name, mode] of modes(out)) {
      expect(mode.toString(8), name).toBe(lstatSync(join(out, name)).isDirectory() ? '555' : '444');
    }
  });

  it('keeps the file an archive is cut in, cut short, when it alone is larger than the bound', async () => {
    const dir = makeTempDir('agentd-unit-output-');
    const limit = 64 * 1024;
    // `truncate -s 1T sparse` beside `a_first`: tar lists the sparse file first, and the setup step cuts
    // the archive at limit + 1 bytes, inside it (a_first never makes it into the archive).
    const whole = Buffer.concat([header('./sparse', { size: 2 ** 40 }), Buffer.alloc(limit + 4096)]);
    const path = join(dir, 'out.tar');
    writeFileSync(path, whole.subarray(0, limit + 1));
    const { out, output } = await seal(dir, path, limit);
    expect(readdirSync(out)).toEqual(['sparse']);
    const kept = lstatSync(join(out, 'sparse')).size;
    expect(kept).toBe(limit + 1 - 512);
    expect(output).toEqual({ files: 1, bytes: kept, truncated: true, skipped: 0 });

    // An archive longer than its bound (the setup step cuts it, but whatever it is): read no further
    // than limit + 1 bytes, the file there cut, nothing after it.
    const big = join(dir, 'big.tar');
    writeFileSync(
      big,
      Buffer.concat([
        file('./a_first', 'x'),
        header('./huge', { size: 4 * limit }),
        Buffer.alloc(4 * limit),
        file('./after', 'after'),
        Buffer.alloc(1024),
      ]),
    );
    const second = await seal(join(dir, 'second'), big, limit);
    expect(readdirSync(second.out).sort()).toEqual(['a_first', 'huge']);
    expect(readFileSync(join(second.out, 'a_first'), 'utf8')).toBe('x');
    expect(lstatSync(join(second.out, 'huge')).size).toBe(limit + 1 - 3 * 512);
    expect(second.output).toEqual({ files: 2, bytes: limit + 1 - 3 * 512 + 1, truncated: true, skipped: 0 });
  });
});
