import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ChunkSource,
  openOutputChannels,
  removeLeftTempDirs,
} from '../../src/adapters/output-channel.js';
import { makeTempDir } from '../helpers/resources.js';

const leftovers = () => readdirSync(tmpdir()).filter((name) => name.startsWith('agentd-output-'));
const children: ReturnType<typeof spawn>[] = [];

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

/** Runs `node -e script` with the channels as its stdout and stderr. */
async function run(script: string) {
  const channels = openOutputChannels(2);
  const [stdout, stderr] = await channels.ends;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', stdout, stderr] });
  channels.close(true);
  children.push(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { child, exited, sources: channels.sources as [ChunkSource, ChunkSource] };
}

/** Everything a source gives (copied), and in how many chunks; `take` false stops the reading until resume(). */
function collect(source: ChunkSource, take: (chunk: Buffer) => boolean = () => true) {
  const chunks: Buffer[] = [];
  let first = () => {};
  const started = new Promise<void>((resolve) => {
    first = resolve;
  });
  const ended = new Promise<void>((resolve) =>
    source.start((chunk) => {
      // A copy: a chunk is a view of the source's buffer, read into again later.
      chunks.push(Buffer.from(chunk));
      first();
      return take(chunk);
    }, resolve),
  );
  return { chunks, ended, started };
}

describe('output channels', () => {
  it('carry a child’s stdout and stderr byte for byte to their end, and leave no socket behind', async () => {
    // 20 MB of varied bytes in 8 KiB writes (as Podman writes a flood), and a line on stderr.
    const { exited, sources } = await run(`
      const { createHash } = require('node:crypto');
      const hash = createHash('sha256');
      let block = Buffer.alloc(8192);
      for (let i = 0; i < 2560; i++) {
        block = createHash('sha512').update(block).digest().toString('hex').repeat(64).slice(0, 8192);
        block = Buffer.from(block);
        require('node:fs').writeSync(1, block);
        hash.update(block);
      }
      require('node:fs').writeSync(2, hash.digest('hex') + '\\n');
    `);
    const out = collect(sources[0]);
    const err = collect(sources[1]);
    await Promise.all([out.ended, err.ended]);
    expect(await exited).toBe(0);
    const bytes = Buffer.concat(out.chunks);
    expect(bytes.length).toBe(2560 * 8192);
    expect(Buffer.concat(err.chunks).toString()).toBe(
      `${createHash('sha256').update(bytes).digest('hex')}\n`,
    );
    // Small writes are taken many at a time: far fewer chunks than writes.
    expect(out.chunks.length).toBeLessThan(2560 / 2);
    expect(leftovers()).toEqual([]);
  });

  it('give the child a blocking stdout, as a pipe would be', async () => {
    const { child, exited, sources } = await run('setTimeout(() => {}, 5000)');
    const out = collect(sources[0]);
    collect(sources[1]);
    // fdinfo's flags are octal; O_NONBLOCK is 04000.
    const flags = /flags:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/fdinfo/1`, 'utf8'))?.[1];
    expect(Number.parseInt(flags ?? 'x', 8) & 0o4000).toBe(0);
    child.kill('SIGKILL');
    await exited;
    await out.ended;
  });

  it('stop reading while the consumer holds a chunk: the writer blocks, and nothing is lost', async () => {
    const { exited, sources } = await run(`
      const fs = require('node:fs');
      const block = Buffer.alloc(65536, 'y');
      for (let i = 0; i < 160; i++) { fs.writeSync(1, block); fs.writeSync(2, 'wrote ' + (i + 1) + '\\n'); }
    `);
    let hold = true;
    const out = collect(sources[0], () => !hold);
    const err = collect(sources[1]);
    // The consumer holds the first chunk: the writer gets no further than the socket's buffers.
    await out.started;
    await new Promise((resolve) => setTimeout(resolve, 500));
    const wrote = Number(/wrote (\d+)\n$/.exec(Buffer.concat(err.chunks).toString())?.[1] ?? 0);
    expect(wrote).toBeLessThan(40);
    expect(out.chunks.length).toBe(1);
    hold = false;
    sources[0].resume();
    await Promise.all([out.ended, err.ended]);
    expect(await exited).toBe(0);
    expect(Buffer.concat(out.chunks).length).toBe(160 * 65536);
  });

  it('hand on views of one reused buffer, not a buffer per read', async () => {
    // 16 MB in 64 KiB writes: reads far larger than Buffer's pool.
    const { exited, sources } = await run(`
      const fs = require('node:fs');
      const block = Buffer.alloc(65536, 'v');
      for (let i = 0; i < 256; i++) fs.writeSync(1, block);
    `);
    const buffers = new Set<ArrayBufferLike>();
    let chunks = 0;
    let bytes = 0;
    const ended = new Promise<void>((resolve) =>
      sources[0].start((chunk) => {
        buffers.add(chunk.buffer);
        chunks++;
        bytes += chunk.length;
        return true;
      }, resolve),
    );
    collect(sources[1]);
    await ended;
    expect(await exited).toBe(0);
    expect(bytes).toBe(256 * 65536);
    expect(chunks).toBeGreaterThan(1);
    // A copy per read made a new ArrayBuffer for each chunk.
    expect(buffers.size).toBe(1);
  });

  it('keep a chunk as it is until the consumer let go of it and its immediates ran', async () => {
    // Random bytes, in pieces of 8 KiB and of 200 KB.
    // Made before the first write: the writer keeps the socket full, as a flood does.
    const { exited, sources } = await run(`
      const fs = require('node:fs');
      const bytes = require('node:crypto').randomBytes(400 * 200000);
      for (let i = 0, at = 0; i < 400; i++) {
        const size = i % 3 === 0 ? 200000 : 8192;
        fs.writeSync(1, bytes.subarray(at, at + size));
        at += size;
      }
    `);
    collect(sources[1]);
    const copies: Buffer[] = [];
    let changed = 0;
    let n = 0;
    const ended = new Promise<void>((resolve) =>
      sources[0].start((chunk) => {
        const copy = Buffer.from(chunk);
        copies.push(copy);
        // What the session bus does: the chunk's bytes are read again in an immediate.
        setImmediate(() => {
          if (!chunk.equals(copy)) changed++;
        });
        // Every third chunk is held for a while and let go with resume(), the others at once, after a
        // moment of work (the writer fills the socket again meanwhile: a read would find bytes at once).
        if (n++ % 3 !== 0) {
          for (const until = performance.now() + 3; performance.now() < until; );
          return true;
        }
        setTimeout(() => {
          setImmediate(() => {
            if (!chunk.equals(copy)) changed++;
          });
          sources[0].resume();
        }, 2);
        return false;
      }, resolve),
    );
    await ended;
    expect(await exited).toBe(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(Buffer.concat(copies).length).toBe(
      Math.ceil(400 / 3) * 200000 + (400 - Math.ceil(400 / 3)) * 8192,
    );
    expect(changed).toBe(0);
  });

  it('end when the child dies mid-stream', async () => {
    const { child, exited, sources } = await run(`
      const fs = require('node:fs');
      for (;;) fs.writeSync(1, Buffer.alloc(4096, 'z'));
    `);
    const out = collect(sources[0]);
    const err = collect(sources[1]);
    await out.started;
    child.kill('SIGKILL');
    // Both sources end (a source that did not would time the test out), and the child is gone.
    await Promise.all([out.ended, err.ended]);
    expect(await exited).toBeNull();
  });

  it('that cannot be made say why, and their sources end', async () => {
    const channels = openOutputChannels(2, '/nonexistent-agentd-dir');
    await expect(channels.ends).rejects.toThrow(/ENOENT.*nonexistent-agentd-dir/);
    await Promise.all(channels.sources.map((source) => collect(source).ended));
  });
});

describe('output-channel directories left by a killed daemon', () => {
  it('are removed at the next start when no process has their pid; a live process keeps its own', async () => {
    const parent = makeTempDir('agentd-unit-outdirs-');
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((resolve) => dead.once('exit', resolve));
    // What a daemon killed between making the directory and connecting the sockets leaves.
    const left = join(parent, `agentd-output-${dead.pid}-abc123`);
    mkdirSync(left);
    writeFileSync(join(left, '0.sock'), '');
    const live = join(parent, `agentd-output-${process.pid}-def456`);
    mkdirSync(live);
    const other = join(parent, 'agentd-output-notapid');
    mkdirSync(other);
    expect(removeLeftTempDirs(parent)).toEqual([left]);
    expect(existsSync(left)).toBe(false);
    expect(existsSync(live) && existsSync(other)).toBe(true);
  });

  it('and the copy dirs of a daemon killed during a podman cp, with what Podman wrote there, go too', async () => {
    const parent = makeTempDir('agentd-unit-outdirs-');
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((resolve) => dead.once('exit', resolve));
    // What a daemon killed while it copied a session's files into a remote host's container leaves:
    // Podman 4.3's copy of the archive, up to the trigger's 9 MiB (a start removed none, and every such
    // kill added one for good).
    const left = join(parent, `agentd-cp-${dead.pid}-Y82zgq`);
    mkdirSync(left);
    writeFileSync(join(left, 'podman-cp-archive'), Buffer.alloc(64 * 1024));
    const live = join(parent, `agentd-cp-${process.pid}-fK7GlJ`);
    mkdirSync(live);
    // An earlier agentd's, without a pid: whose it is cannot be told (another daemon may be copying).
    const unnamed = join(parent, 'agentd-cp-ktSqds');
    mkdirSync(unnamed);
    expect(removeLeftTempDirs(parent)).toEqual([left]);
    expect(existsSync(left)).toBe(false);
    expect(existsSync(live) && existsSync(unnamed)).toBe(true);
  });

  it('are named with the pid of the daemon that makes them', async () => {
    const parent = makeTempDir('agentd-unit-outdirs-');
    const channels = openOutputChannels(1, parent);
    expect(readdirSync(parent)).toEqual([
      expect.stringMatching(new RegExp(`^agentd-output-${process.pid}-`)),
    ]);
    const [end] = await channels.ends;
    channels.close(false);
    end?.destroy();
  });
});
