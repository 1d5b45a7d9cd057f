/**
 * Sealed session records (src/adapters/sealed-records.ts) on a real filesystem: the output archive an
 * agent made is unpacked as regular files and directories only, within its bound; a sealed record is
 * read-only; retention removes by age and total size; an export holds the whole record.
 */
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { exportRecord, SealedRecords } from '../../src/adapters/sealed-records.js';
import { makeTempDir } from '../helpers/resources.js';

const ID = '0123456789abcdef';

/** One ustar entry: a 512-byte header and the content padded to 512. */
function entry(name: string | Buffer, content: string | Buffer, type = '0', link = ''): Buffer {
  const data = typeof content === 'string' ? Buffer.from(content) : content;
  const header = Buffer.alloc(512);
  if (typeof name === 'string') header.write(name, 0, 100);
  else name.copy(header, 0, 0, 100);
  header.write('0000644\0', 100);
  header.write('0001750\0', 108);
  header.write('0001750\0', 116);
  header.write(`${(type === '0' ? data.length : 0).toString(8).padStart(11, '0')}\0`, 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148);
  header.write(type, 156);
  header.write(link, 157, 100);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  if (type !== '0') return header;
  const padded = Buffer.alloc(Math.ceil(data.length / 512) * 512);
  data.copy(padded);
  return Buffer.concat([header, padded]);
}

function archive(dir: string, ...entries: Buffer[]): string {
  const file = join(dir, 'out.tar');
  writeFileSync(file, Buffer.concat([...entries, Buffer.alloc(1024)]));
  return file;
}

async function seal(records: SealedRecords, file: string | undefined, limit = 1024 * 1024) {
  const log = join(records.dir, '..', 'session.log');
  writeFileSync(log, 'line one\nline two\n');
  return records.seal({
    agent: 'demo',
    sessionId: ID,
    log,
    ...(file === undefined ? {} : { archive: file }),
    archiveLimit: limit,
    json: (output) => ({ id: ID, output }),
  });
}

function tree(dir: string, prefix = ''): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      const stat = lstatSync(path);
      const mode = (stat.mode & 0o777).toString(8);
      const line = `${prefix}${name} ${stat.isDirectory() ? 'dir' : stat.isFile() ? 'file' : 'other'} ${mode}`;
      return stat.isDirectory() ? [line, ...tree(path, `${prefix}${name}/`)] : [line];
    });
}

describe('sealed records', () => {
  it('unpacks nested files, seals files 0444 and directories 0555, and keeps the log', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const records = new SealedRecords(join(dir, 'records'));
    records.write('demo', ID, { id: ID, phase: 'running' });
    const file = archive(
      dir,
      entry('./', '', '5'),
      entry('./a/', '', '5'),
      entry('./a/b/', '', '5'),
      entry('./a/b/c.txt', 'nested\n'),
      entry('./top.json', '{"ok":true}'),
    );
    const { dir: recordDir, output } = await seal(records, file);
    expect(recordDir).toBe(join(dir, 'records', 'demo', ID));
    expect(output).toEqual({ files: 2, bytes: 18, truncated: false, skipped: 0 });
    expect(tree(recordDir)).toEqual([
      'out dir 555',
      'out/a dir 555',
      'out/a/b dir 555',
      'out/a/b/c.txt file 444',
      'out/top.json file 444',
      'session.json file 444',
      'session.log file 444',
    ]);
    expect((lstatSync(recordDir).mode & 0o777).toString(8)).toBe('555');
    expect(readFileSync(join(recordDir, 'out/a/b/c.txt'), 'utf8')).toBe('nested\n');
    expect(readFileSync(join(recordDir, 'session.log'), 'utf8')).toBe('line one\nline two\n');
    expect(JSON.parse(readFileSync(join(recordDir, 'session.json'), 'utf8'))).toEqual({ id: ID, output });
    // Sealed: a later write changes nothing.
    records.write('demo', ID, { id: ID, phase: 'changed' });
    await records.settled();
    expect(JSON.parse(readFileSync(join(recordDir, 'session.json'), 'utf8')).output).toEqual(output);
  });

  it('leaves out links, fifos, paths outside out/ and devices that a hostile agent put in its archive', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const records = new SealedRecords(join(dir, 'records'));
    const file = archive(
      dir,
      entry('./link', '', '2', '/etc/shadow'),
      entry('./hard', '', '1', './ok.txt'),
      entry('./fifo', '', '6'),
      entry('./dev', '', '3'),
      entry('../escape.txt', 'out'),
      entry('/abs.txt', 'abs'),
      entry('./ok.txt', 'fine'),
    );
    const { dir: recordDir, output } = await seal(records, file);
    // The link, the hard link, the fifo, the device and the `..` path; not counted as files.
    expect(output.skipped).toBe(5);
    expect(output.files).toBe(2);
    expect(tree(join(recordDir, 'out')).every((line) => !line.includes('other'))).toBe(true);
    expect(existsSync(join(recordDir, 'out', 'link'))).toBe(false);
    expect(existsSync(join(recordDir, 'escape.txt'))).toBe(false);
    expect(existsSync(join(dir, 'records', 'demo', 'escape.txt'))).toBe(false);
    // Absolute and `..` paths are made relative to out/ or refused, never written outside it.
    for (const name of readdirSync(join(dir, 'records', 'demo'))) expect(name).toBe(ID);
    expect(readFileSync(join(recordDir, 'out', 'ok.txt'), 'utf8')).toBe('fine');
  });

  it('keeps every name of a file with more than one: tar archives the names after the first as hard links to it', async () => {
    // GNU tar of /agentd/out after `ln report.md latest.md`: the name read first is the file, the other
    // a link to it (on a tmpfs the newest name comes first, so the report itself was the one lost).
    const dir = makeTempDir('agentd-unit-records-');
    const records = new SealedRecords(join(dir, 'records'));
    const file = archive(
      dir,
      entry('./', '', '5'),
      entry('./latest.md', 'the report\n'),
      entry('./report.md', '', '1', './latest.md'),
      entry('./sub/', '', '5'),
      entry('./sub/copy.md', '', '1', 'latest.md'),
      // Never to anything but a file kept before it, nor in its own place.
      entry('./to-host', '', '1', '/etc/hostname'),
      entry('./up', '', '1', '../records/demo'),
      entry('./to-dir', '', '1', './sub'),
      entry('./later', '', '1', './not-yet.txt'),
      entry('./not-yet.txt', 'x'),
      entry('./not-yet.txt', '', '1', './not-yet.txt'),
    );
    const { dir: recordDir, output } = await seal(records, file);
    const out = join(recordDir, 'out');
    expect(tree(out)).toEqual([
      'latest.md file 444',
      'not-yet.txt file 444',
      'report.md file 444',
      'sub dir 555',
      'sub/copy.md file 444',
    ]);
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toBe('the report\n');
    expect(readFileSync(join(out, 'sub', 'copy.md'), 'utf8')).toBe('the report\n');
    // The bytes of the file once: the links add a name, not content.
    expect(output).toEqual({ files: 4, bytes: 12, truncated: false, skipped: 5 });
    // An export holds every name, and tar makes each again from it.
    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    sink.on('data', (chunk: Buffer) => chunks.push(chunk));
    await exportRecord(recordDir, sink);
    const exported = join(dir, 'export.tar.gz');
    writeFileSync(exported, Buffer.concat(chunks));
    const into = join(dir, 'unpacked');
    mkdirSync(into);
    execFileSync('tar', ['-xzf', exported, '-C', into]);
    expect(readFileSync(join(into, ID, 'out', 'sub', 'copy.md'), 'utf8')).toBe('the report\n');
  });

  it('counts a file with many names once against records_max_bytes: an agent cannot make retention remove the other records', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const records = new SealedRecords(join(dir, 'records'));
    const older = '00000000000000a1';
    await records.seal({
      agent: 'demo',
      sessionId: older,
      archive: archive(dir, entry('./kept.txt', 'an older session\n')),
      archiveLimit: 1024 * 1024,
      json: (output) => ({ id: older, output }),
    });
    // 1 MiB, and 2,000 more names of it: 2 GB if each name counted its bytes.
    const links = Array.from({ length: 2000 }, (_, i) => entry(`./link-${i}`, '', '1', './big'));
    const file = join(dir, 'links.tar');
    writeFileSync(
      file,
      Buffer.concat([entry('./big', Buffer.alloc(1024 * 1024, 'b')), ...links, Buffer.alloc(1024)]),
    );
    const { output } = await records.seal({
      agent: 'demo',
      sessionId: ID,
      archive: file,
      archiveLimit: 2 * 1024 * 1024,
      json: (summary) => ({ id: ID, output: summary }),
    });
    expect(output.files).toBe(2001);
    const removed = records.prune(Number.POSITIVE_INFINITY, 64 * 1024 * 1024);
    expect(removed).toEqual([]);
    // Read from disk at a start, the same.
    const sizes = records.scan().map((entry) => entry.bytes);
    expect(Math.max(...sizes)).toBeLessThan(4 * 1024 * 1024);
    expect(records.prune(Number.POSITIVE_INFINITY, 64 * 1024 * 1024)).toEqual([]);
  });

  it('counts only the files the record holds: names that are not UTF-8 or too long are skipped, a repeated name is one file', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const records = new SealedRecords(join(dir, 'records'));
    const file = archive(
      dir,
      // Two names tar would both read as U+FFFD (the second would replace the first) ...
      entry(Buffer.from([0x2e, 0x2f, 0xff]), 'a'),
      entry(Buffer.from([0x2e, 0x2f, 0xfe]), 'b'),
      // ... and 99 Latin-1 bytes, 297 bytes as UTF-8: over the 255 a name may have.
      entry(Buffer.concat([Buffer.from('./'), Buffer.alloc(98, 0xe9)]), 'c'),
      entry(`./${'n'.repeat(98)}`, 'long but fine'),
      entry('./same.txt', 'first'),
      entry('same.txt', 'second'),
      // Under a name that is a file: tar cannot write it (its warning, not a file).
      entry('./same.txt/inner.txt', 'x'),
    );
    const { dir: recordDir, output } = await seal(records, file);
    expect(tree(join(recordDir, 'out')).sort()).toEqual([`${'n'.repeat(98)} file 444`, 'same.txt file 444']);
    expect(output.files).toBe(2);
    expect(output.skipped).toBe(4);
    expect(readFileSync(join(recordDir, 'out', 'same.txt'), 'utf8')).toBe('second');
  });

  it('keeps at most its bound and says the output was cut', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const records = new SealedRecords(join(dir, 'records'));
    const file = archive(
      dir,
      entry('./first', Buffer.alloc(3000, 0x61)),
      entry('./second', Buffer.alloc(3000, 0x62)),
      entry('./third', 'c'),
    );
    const { dir: recordDir, output } = await seal(records, file, 4096);
    // Read as the setup step cuts it, at 4097 bytes: the first whole, the second cut short (1 byte of
    // it is in those 4097), nothing after it.
    expect(output).toEqual({ files: 2, bytes: 3001, truncated: true, skipped: 0 });
    expect(readdirSync(join(recordDir, 'out')).sort()).toEqual(['first', 'second']);
    expect(readFileSync(join(recordDir, 'out', 'second'), 'utf8')).toBe('b');
  });

  it('seals what an archive cut mid-entry holds, and says it was cut', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const records = new SealedRecords(join(dir, 'records'));
    const whole = Buffer.concat([
      entry('./first', Buffer.alloc(3000, 0x61)),
      entry('./second', Buffer.alloc(3000, 0x62)),
      entry('./third', Buffer.alloc(3000, 0x63)),
    ]);
    // As the setup step's `head -c limit+1` cuts it: inside the second file.
    const file = join(dir, 'out.tar');
    writeFileSync(file, whole.subarray(0, 4097));
    const { dir: recordDir, output } = await seal(records, file, 4096);
    // What came before the cut: the first file, and the second cut short.
    expect(output).toEqual({ truncated: true, files: 2, bytes: 3001, skipped: 0 });
    expect(readdirSync(join(recordDir, 'out')).sort()).toEqual(['first', 'second']);
    expect(readFileSync(join(recordDir, 'out', 'second'), 'utf8')).toBe('b');
    expect(records.isSealed(recordDir)).toBe(true);
    expect(readFileSync(join(recordDir, 'session.log'), 'utf8')).toBe('line one\nline two\n');
  });

  it('seals the record of an archive that is empty, not tar, compressed or damaged, and says so', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const cases: [string, Buffer, RegExp][] = [
      ['empty', Buffer.alloc(0), /empty/],
      ['garbage', Buffer.alloc(5000, 0x41), /not a tar archive/],
      [
        'gzip',
        execFileSync('gzip', ['-c'], { input: Buffer.concat([entry('./a', 'x'), Buffer.alloc(1024)]) }),
        /not a tar archive/,
      ],
    ];
    for (const [name, bytes, reason] of cases) {
      const records = new SealedRecords(join(dir, name));
      const file = join(dir, `${name}.tar`);
      writeFileSync(file, bytes);
      const { dir: recordDir, output } = await seal(records, file);
      expect(output.missing, name).toMatch(reason);
      expect(records.isSealed(recordDir), name).toBe(true);
      expect(readdirSync(recordDir).sort(), name).toEqual(['out', 'session.json', 'session.log']);
    }
    // Compressed: tar would inflate it, and a gzip comment can put `ustar` at byte 257.
    const gzipped = Buffer.alloc(1024, 0xff);
    gzipped.set([0x1f, 0x8b, 8, 0x10]);
    gzipped.write('ustar', 257);
    const zstd = Buffer.alloc(1024);
    zstd.writeUInt32LE(0xfd2fb528, 0);
    zstd.write('ustar', 257);
    for (const [name, bytes] of [
      ['gzip-comment', gzipped],
      ['zstd', zstd],
    ] as const) {
      const records = new SealedRecords(join(dir, name));
      const file = join(dir, `${name}.tar`);
      writeFileSync(file, bytes);
      const { dir: recordDir, output } = await seal(records, file);
      expect(output.missing, name).toMatch(/not a tar archive/);
      expect(records.isSealed(recordDir), name).toBe(true);
    }
    // Not cut (shorter than its bound), yet it ends inside an entry: damaged, what came before kept.
    const records = new SealedRecords(join(dir, 'damaged'));
    const file = join(dir, 'damaged.tar');
    writeFileSync(
      file,
      Buffer.concat([entry('./kept', 'kept'), entry('./lost', Buffer.alloc(3000, 0x62))]).subarray(0, 2048),
    );
    const { dir: recordDir, output } = await seal(records, file);
    expect(output).toMatchObject({
      truncated: false,
      damaged: expect.stringContaining('ends early or is damaged'),
    });
    expect(readFileSync(join(recordDir, 'out', 'kept'), 'utf8')).toBe('kept');
    expect(records.isSealed(recordDir)).toBe(true);
    // Cut between entries, or inside a header: tar reads what is there without a word; no end says it.
    const two = Buffer.concat([entry('./kept', 'kept'), entry('./next', 'next')]);
    for (const [name, bytes] of [
      ['between', two.subarray(0, 1024)],
      ['in-header', two.subarray(0, 1024 + 300)],
    ] as const) {
      const cut = new SealedRecords(join(dir, name));
      const path = join(dir, `${name}.tar`);
      writeFileSync(path, bytes);
      const sealed = await seal(cut, path);
      expect(sealed.output, name).toMatchObject({
        files: 1,
        damaged: expect.stringContaining('no end of archive'),
      });
    }
  });

  it('counts the directories an entry path makes against the 10,000, and clears special mode bits', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const records = new SealedRecords(join(dir, 'records'));
    // No directory entries: 400 files each 30 directories deep, each chain its own (12,000 directories).
    const deep = Array.from({ length: 400 }, (_, i) =>
      entry(`./d${i}/${Array.from({ length: 29 }, () => 'x').join('/')}/f`, ''),
    );
    const setuid = entry('./setuid', 'x');
    setuid.write('0004755\0', 100);
    let sum = 0;
    setuid.write('        ', 148);
    for (const byte of setuid.subarray(0, 512)) sum += byte;
    setuid.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    const { dir: recordDir, output } = await seal(records, archive(dir, setuid, ...deep), 64 * 1024 * 1024);
    expect(output.truncated).toBe(true);
    let made = 0;
    const walk = (path: string): void => {
      for (const name of readdirSync(path)) {
        made++;
        if (lstatSync(join(path, name)).isDirectory()) walk(join(path, name));
      }
    };
    walk(join(recordDir, 'out'));
    expect(made).toBeLessThanOrEqual(10_000);
    expect(made).toBeGreaterThan(9_000);
    expect((lstatSync(join(recordDir, 'out', 'setuid')).mode & 0o7777).toString(8)).toBe('444');
  });

  it('keeps at most 10,000 files and directories', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const records = new SealedRecords(join(dir, 'records'));
    const many = Array.from({ length: 10_050 }, (_, i) => entry(`./f${i}`, ''));
    const { dir: recordDir, output } = await seal(records, archive(dir, ...many), 64 * 1024 * 1024);
    expect(output).toMatchObject({ files: 10_000, truncated: true });
    expect(readdirSync(join(recordDir, 'out'))).toHaveLength(10_000);
  });

  it('says why there is no output when the command left no archive', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const records = new SealedRecords(join(dir, 'records'));
    const { dir: recordDir, output } = await seal(records, join(dir, 'missing.tar'));
    expect(output.missing).toContain('did not run to its end');
    expect(readdirSync(join(recordDir, 'out'))).toEqual([]);
  });

  it('removes sealed records by age, by count and by total size, oldest first, never an open one', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const records = new SealedRecords(join(dir, 'records'));
    const ids = ['00000000000000a1', '00000000000000a2', '00000000000000a3'];
    for (const [i, id] of ids.entries()) {
      const file = archive(dir, entry('./data', Buffer.alloc(100_000, 0x61)));
      await records.seal({
        agent: 'demo',
        sessionId: id,
        archive: file,
        archiveLimit: 1 << 20,
        json: () => ({ id }),
      });
      const when = new Date(Date.now() - (3 - i) * 86_400_000);
      utimesSync(join(records.dirOf('demo', id), 'session.json'), when, when);
    }
    records.write('demo', '00000000000000b1', { open: true });
    await records.settled();
    const now = Date.now();
    records.scan();
    // By age: older than 2.5 days goes (the first).
    expect(records.prune(2.5 * 86_400_000, 1 << 30, Infinity, now).map((e) => e.sessionId)).toEqual([ids[0]]);
    // By size: room for one more (100 kB of data, and a block each for out/ and session.json).
    expect(records.prune(10 * 86_400_000, 250_000, Infinity, now)).toEqual([]);
    expect(records.prune(10 * 86_400_000, 150_000, Infinity, now).map((e) => e.sessionId)).toEqual([ids[1]]);
    // By count: none left but the open one.
    expect(records.prune(10 * 86_400_000, 1 << 30, 0, now).map((e) => e.sessionId)).toEqual([ids[2]]);
    expect(readdirSync(join(dir, 'records', 'demo')).sort()).toEqual(['00000000000000b1']);
  });

  it('removes by age only what is old by its own clock: the wall clock set 10 years ahead removes nothing more', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const records = new SealedRecords(join(dir, 'records'));
    const day = 86_400_000;
    const ids = ['00000000000000c1', '00000000000000c2', '00000000000000c3', '00000000000000c4'] as const;
    const sealOne = (id: string) =>
      records.seal({ agent: 'demo', sessionId: id, archiveLimit: 1 << 20, json: () => ({ id }) });
    // 40, 2 and 1 days old: the first is past a 30-day records_max_age.
    for (const [id, days] of [
      [ids[0], 40],
      [ids[1], 2],
      [ids[2], 1],
    ] as const) {
      await sealOne(id);
      const when = new Date(Date.now() - days * day);
      utimesSync(join(records.dirOf('demo', id), 'session.json'), when, when);
    }
    records.scan();
    // A bad RTC or NTP source sets the wall clock 10 years ahead; a session finishes after it.
    const wall = Date.now.bind(Date);
    const step = vi.spyOn(Date, 'now').mockImplementation(() => wall() + 3650 * day);
    try {
      await sealOne(ids[3] as string);
      expect(records.prune(30 * day, 1 << 30).map((e) => e.sessionId)).toEqual([ids[0]]);
      expect(records.prune(30 * day, 1 << 30)).toEqual([]);
      // records_max_count still applies, oldest first: the one sealed after the step is the newest.
      expect(records.prune(30 * day, 1 << 30, 2).map((e) => e.sessionId)).toEqual([ids[1]]);
      expect(readdirSync(join(dir, 'records', 'demo')).sort()).toEqual([ids[2], ids[3]]);
    } finally {
      step.mockRestore();
    }
  });

  it('ages records by the clock it is given: one sealed passes records_max_age as that clock moves on', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    let now = Date.now();
    const records = new SealedRecords(join(dir, 'records'), () => now);
    await records.seal({ agent: 'demo', sessionId: ID, archiveLimit: 1 << 20, json: () => ({ id: ID }) });
    expect(records.prune(30 * 86_400_000, 1 << 30)).toEqual([]);
    now += 31 * 86_400_000;
    expect(records.prune(30 * 86_400_000, 1 << 30).map((e) => e.sessionId)).toEqual([ID]);
  });

  it('takes a pruned record out at once and removes its thousands of files in the background', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const records = new SealedRecords(join(dir, 'records'));
    // An agent's output of 3,000 files in 30 directories (sealed: 0444 files, 0555 directories).
    const files: Buffer[] = [];
    for (let d = 0; d < 30; d++) for (let f = 0; f < 100; f++) files.push(entry(`./d${d}/f${f}`, 'x'));
    await records.seal({
      agent: 'demo',
      sessionId: ID,
      archive: archive(dir, ...files),
      archiveLimit: 1 << 24,
      json: () => ({ id: ID }),
    });
    expect(records.scan().map((e) => e.sessionId)).toEqual([ID]);
    expect(records.prune(0, 0).map((e) => e.sessionId)).toEqual([ID]);
    // Gone from the records at once (and the agent's directory with it), not yet from the disk: what
    // prune did took no removal of 3,000 files.
    expect(readdirSync(join(dir, 'records'))).toEqual(['.removing']);
    expect(records.find(ID)).toBeUndefined();
    expect(records.scan()).toEqual([]);
    expect(readdirSync(join(dir, 'records', '.removing', `demo.${ID}`, 'out'))).toHaveLength(30);
    await records.emptied();
    expect(readdirSync(join(dir, 'records', '.removing'))).toEqual([]);
  });

  it('removes at start what a daemon that stopped had not finished removing', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const left = join(dir, 'records', '.removing', `demo.${ID}`, 'out', 'sub');
    mkdirSync(left, { recursive: true, mode: 0o700 });
    writeFileSync(join(left, 'file'), 'x');
    execFileSync('chmod', ['-R', 'a-w', join(dir, 'records', '.removing', `demo.${ID}`)]);
    const records = new SealedRecords(join(dir, 'records'));
    expect(records.scan()).toEqual([]);
    await records.emptied();
    expect(readdirSync(join(dir, 'records', '.removing'))).toEqual([]);
  });

  it('never writes, seals, lists or removes through a link planted for an agent or a session', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const records = new SealedRecords(join(dir, 'records'));
    // Elsewhere on the host: a directory shaped like an old sealed record, which retention would remove.
    const victim = join(dir, 'victim');
    mkdirSync(join(victim, ID, 'out'), { recursive: true });
    writeFileSync(join(victim, ID, 'notes.txt'), 'keep me\n');
    writeFileSync(join(victim, ID, 'session.json'), '{}\n');
    const old = new Date(Date.now() - 60 * 86_400_000);
    utimesSync(join(victim, ID, 'session.json'), old, old);
    execFileSync('chmod', ['-R', 'a-w', join(victim, ID)]);
    symlinkSync(victim, join(dir, 'records', 'demo'));
    mkdirSync(join(dir, 'records', 'other'), { mode: 0o700 });
    symlinkSync(join(victim, ID), join(dir, 'records', 'other', '00000000000000d1'));

    expect(records.scan()).toEqual([]);
    expect(records.prune(0, 0)).toEqual([]);
    expect(records.find(ID)).toBeUndefined();
    expect(records.find('00000000000000d1')).toBeUndefined();
    const errors: string[] = [];
    records.write('demo', '00000000000000e1', { id: 'x' }, (e) => errors.push(e.message));
    records.write('other', '00000000000000d1', { id: 'x' }, (e) => errors.push(e.message));
    await records.settled();
    expect(errors).toEqual([
      expect.stringContaining('is a symbolic link'),
      expect.stringContaining('is a symbolic link'),
    ]);
    await expect(seal(records, undefined)).rejects.toThrow(
      /records directory of agent demo .* is a symbolic link/,
    );
    await expect(
      records.seal({ agent: 'other', sessionId: '00000000000000d1', archiveLimit: 1024, json: () => ({}) }),
    ).rejects.toThrow(/record directory of session 00000000000000d1 .* is a symbolic link/);
    // The victim is as it was.
    expect(readdirSync(victim)).toEqual([ID]);
    expect(readdirSync(join(victim, ID)).sort()).toEqual(['notes.txt', 'out', 'session.json']);
    expect(readFileSync(join(victim, ID, 'notes.txt'), 'utf8')).toBe('keep me\n');
    expect(readFileSync(join(victim, ID, 'session.json'), 'utf8')).toBe('{}\n');
    execFileSync('chmod', ['-R', 'u+w', victim]);
  });

  it('finds a record by its session id alone', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const records = new SealedRecords(join(dir, 'records'));
    records.write('other', '00000000000000c1', { id: '00000000000000c1' });
    await records.settled();
    await seal(records, undefined);
    expect(records.find(ID)).toEqual({
      dir: records.dirOf('demo', ID),
      sealed: true,
      json: expect.objectContaining({ id: ID }),
    });
    expect(records.find('00000000000000c1')).toMatchObject({
      sealed: false,
      json: { id: '00000000000000c1' },
    });
    expect(records.find('ffffffffffffffff')).toBeUndefined();
    expect(records.find('../../etc')).toBeUndefined();
  });

  it('exports a record as a tar.gz with every file', async () => {
    const dir = makeTempDir('agentd-unit-records-');
    const records = new SealedRecords(join(dir, 'records'));
    const { dir: recordDir } = await seal(records, archive(dir, entry('./x/y.txt', 'y')));
    const chunks: Buffer[] = [];
    const sink = new PassThrough();
    sink.on('data', (chunk: Buffer) => chunks.push(chunk));
    await exportRecord(recordDir, sink);
    const file = join(dir, 'export.tar.gz');
    writeFileSync(file, Buffer.concat(chunks));
    const listing = execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(listing.sort()).toEqual([
      `${ID}/`,
      `${ID}/out/`,
      `${ID}/out/x/`,
      `${ID}/out/x/y.txt`,
      `${ID}/session.json`,
      `${ID}/session.log`,
    ]);
  });
});
