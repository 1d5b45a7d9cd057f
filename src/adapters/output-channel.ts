import { lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { isAlive } from './pid-file.js';

/**
 * Where an OutputReader gets a stream's bytes. onChunk returning false stops the reading until
 * resume(); onEnd is called once, at the end of the stream or when it fails (a pipe that broke ends the
 * output: the exit code says the rest).
 *
 * A chunk's bytes may be the source's own buffer, read into again later: they stay as they are until
 * the consumer lets go of the chunk (onChunk returns true, or it calls resume()) and the callbacks it
 * scheduled with setImmediate before that have run (the session bus hands a turn's blocks of lines on
 * so). What a consumer keeps longer, it copies.
 */
export interface ChunkSource {
  start(onChunk: (chunk: Buffer) => boolean, onEnd: () => void): void;
  resume(): void;
}

/** A Node stream as a ChunkSource (how the tests feed an OutputReader). */
export function readableSource(input: Readable): ChunkSource {
  return {
    start(onChunk, onEnd) {
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        onEnd();
      };
      input.on('data', (chunk: Buffer) => {
        if (!onChunk(chunk)) input.pause();
      });
      input.once('end', end);
      input.once('error', end);
      input.once('close', end);
    },
    resume() {
      if (input.isPaused()) input.resume();
    },
  };
}

/** One read takes at most this much; it is copied out in one piece. */
const READ_BUFFER_BYTES = 256 * 1024;
/** A read smaller than this means the writer writes in small pieces: the next read waits a moment. */
const COALESCE_BELOW_BYTES = 64 * 1024;
/** ... this long, so that it takes many of those pieces at once (the socket holds ~200 KiB). */
const COALESCE_MS = 1;

/**
 * A child's output stream, read by the daemon through a Unix socket with one reused buffer (Node's
 * `onread`): a stream of a child process allocates a 64 KiB buffer per read and goes through the
 * stream machinery for each, and Podman writes a flood in 8 KiB pieces, so that cost 3 to 4 ms of
 * CPU per MB; read here, after a small read the next one waits COALESCE_MS and takes what came
 * meanwhile at once (measured 1.2 to 2.3 ms per MB with the copy, see docs/benchmarks.md). The writer
 * blocks on the full socket meanwhile, as on a pipe.
 *
 * The consumer gets a view of that buffer, not a copy (see ChunkSource): after each read the socket
 * stops, and reads again only in a later turn once the consumer let go of the chunk, after the
 * immediates it scheduled meanwhile. A copy per read (200 MB of buffers for four sessions printing 50
 * MB) cost the daemon about a third of its CPU per MB of output, most of it in the page faults of the
 * new buffers and the full collections their external memory set off (bench/findings.md).
 */
class SocketSource implements ChunkSource {
  private onChunk: (chunk: Buffer) => boolean = () => true;
  private onEnd: () => void = () => {};
  private ended = false;
  /** The consumer has not taken all of the last chunk yet. */
  private held = false;
  /** The next read waits COALESCE_MS after a small read. */
  private coalescing = false;
  /** ... and for a later turn, after the immediates scheduled before the consumer let go of the chunk. */
  private deferred = false;
  private readonly socket: Socket;
  /** Settles once the socket is connected, or failed to connect. */
  readonly connected: Promise<void>;

  constructor(path: string) {
    const buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
    this.socket = connect({
      path,
      onread: { buffer, callback: (bytes: number) => this.read(buffer, bytes) },
    });
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.on('error', reject);
    });
    // The end of the child's output: EOF, or a socket that failed.
    this.socket.once('end', () => this.end());
    this.socket.on('error', () => this.end());
    this.socket.once('close', () => this.end());
  }

  start(onChunk: (chunk: Buffer) => boolean, onEnd: () => void): void {
    this.onChunk = onChunk;
    this.onEnd = onEnd;
    if (this.ended) onEnd();
  }

  resume(): void {
    this.held = false;
    this.defer();
  }

  /** Stops reading for good (the child never started). */
  destroy(): void {
    this.socket.destroy();
    this.end();
  }

  private read(buffer: Buffer, bytes: number): boolean {
    // The consumer's view of the buffer: not read into again in this turn (false stops the socket).
    this.held = !this.onChunk(buffer.subarray(0, bytes));
    if (bytes < COALESCE_BELOW_BYTES) {
      this.coalescing = true;
      setTimeout(() => {
        this.coalescing = false;
        this.readOn();
      }, COALESCE_MS);
    } else this.defer();
    return false;
  }

  /** The next read waits for an immediate: after those scheduled so far (see ChunkSource). */
  private defer(): void {
    if (this.deferred) return;
    this.deferred = true;
    setImmediate(() => {
      this.deferred = false;
      this.readOn();
    });
  }

  /** Reads again once nothing holds the buffer or makes the next read wait. */
  private readOn(): void {
    if (!this.held && !this.coalescing && !this.deferred) this.socket.resume();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd();
  }
}

/** Output streams for one child process: `ends` go to its stdio, `sources` are read by the daemon. */
export interface OutputChannels {
  sources: ChunkSource[];
  /**
   * The child's ends, once connected; to be closed in the daemon (close()) right after the spawn, so
   * that the sources end when the child's copies do. (libuv makes a child's stdio blocking, as a pipe
   * it makes for one is.)
   */
  ends: Promise<Socket[]>;
  /** Closes the daemon's copies of the child's ends, and the sources too when the child never got them. */
  close(spawned: boolean): void;
}

const OUTPUT_DIR_PREFIX = 'agentd-output-';

/**
 * The temp dir a `podman cp` into a container of a remote host gets (PodmanClient.copyIntoContainer):
 * Podman 4.3 writes the copied archive (a trigger's request and inputs, up to 9 MiB) into a file there,
 * which a daemon killed during the copy leaves.
 */
export const COPY_DIR_PREFIX = 'agentd-cp-';

/**
 * Removes the temp directories of daemons that are gone (killed while connecting a child's output, or
 * while copying a session's files into its container on a remote host): this user's, named with a pid
 * no process has. Quiet: what cannot be removed stays.
 */
export function removeLeftTempDirs(parent = tmpdir()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return removed;
  }
  for (const name of names) {
    const prefix = [OUTPUT_DIR_PREFIX, COPY_DIR_PREFIX].find((p) => name.startsWith(p));
    if (prefix === undefined) continue;
    const pid = /^(\d+)-./.exec(name.slice(prefix.length))?.[1];
    if (pid === undefined || isAlive(Number(pid))) continue;
    const path = join(parent, name);
    try {
      const stat = lstatSync(path);
      if (!stat.isDirectory() || stat.uid !== process.getuid?.()) continue;
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    } catch {
      // Gone meanwhile, or not ours to remove.
    }
  }
  return removed;
}

/**
 * `count` connected socket pairs for a child's output, made through a listening socket in a fresh
 * directory only root can enter (mkdtemp makes it 0700), which is gone once they are connected.
 */
export function openOutputChannels(count: number, parent = tmpdir()): OutputChannels {
  const sources: SocketSource[] = [];
  const accepted: Promise<Socket>[] = [];
  const servers: Server[] = [];
  /** The child's ends as they are accepted (closed again if the rest fails). */
  const taken: Socket[] = [];
  let dir: string | undefined;
  try {
    // Named with the pid: a daemon killed between here and the connections leaves the directory, which
    // the next start removes (removeLeftTempDirs) once no process has that pid.
    dir = mkdtempSync(join(parent, `${OUTPUT_DIR_PREFIX}${process.pid}-`));
    for (let i = 0; i < count; i++) {
      const path = join(dir, `${i}.sock`);
      const server = createServer();
      servers.push(server);
      accepted.push(
        new Promise<Socket>((resolve, reject) => {
          server.once('connection', (socket: Socket) => {
            taken.push(socket);
            resolve(socket);
          });
          server.on('error', reject);
        }),
      );
      // Bound at once (the 'listening' event comes later): a connection made now is taken.
      server.listen(path);
      sources.push(new SocketSource(path));
    }
  } catch (error) {
    // No channels (e.g. no room in the temp dir): the caller's spawn fails with this error.
    for (const server of servers) server.close();
    for (const source of sources) source.destroy();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    const ended: ChunkSource = { start: (_onChunk, onEnd) => onEnd(), resume: () => {} };
    return { sources: Array.from({ length: count }, () => ended), ends: Promise.reject(error), close() {} };
  }
  let ends: Socket[] = [];
  const connected = Promise.all([...accepted, ...sources.map((source) => source.connected)]).then(
    (sockets) => {
      ends = sockets.slice(0, count) as Socket[];
      return ends;
    },
    (error: unknown) => {
      for (const socket of taken) socket.destroy();
      for (const source of sources) source.destroy();
      throw error;
    },
  );
  const removed = connected.finally(() => {
    // Closing a listening Unix socket unlinks its path.
    for (const server of servers) server.close();
    rmSync(dir as string, { recursive: true, force: true });
  });
  return {
    sources,
    ends: removed,
    close(spawned) {
      for (const end of ends) end.destroy();
      if (!spawned) for (const source of sources) source.destroy();
    },
  };
}
