/**
 * A PodmanPort without Podman: every call waits until the test settles it (or, in `auto` mode, succeeds
 * at once), and what a settled call made or removed is kept, so a test can ask what a user would check
 * with `podman ps -a` and `podman secret ls`.
 */
import type {
  AttachedRun,
  CreateContainerOptions,
  OutputHandler,
  PodmanPort,
} from '../../src/adapters/podman.js';
import { PodmanError } from '../../src/adapters/podman-errors.js';
import type { ContainerInspect, ContainerSummary } from '../../src/adapters/podman-schemas.js';

export type Operation =
  | 'readContainerFiles'
  | 'readSecretCopies'
  | 'createSecret'
  | 'createContainer'
  | 'runAttached'
  | 'stopContainer'
  | 'removeSecrets'
  | 'removeContainers'
  | 'inspectContainer'
  | 'wait';

export interface Call {
  op: Operation;
  /** The Podman objects the call is about. */
  names: string[];
  signal: AbortSignal | undefined;
  settled: boolean;
  succeed(): void;
  fail(message?: string): void;
}

/** A container's output stream, as `start --attach` or `logs --follow` gives it. */
export interface Stream {
  container: string;
  signal: AbortSignal | undefined;
  /** Where `logs --follow` was asked to start (undefined: replay from the start). */
  since?: string;
  line(text: string): void;
  /** A piece of a line (end false: the line goes on in the next piece), or a line on stderr. */
  piece(text: string, end: boolean, stream?: 'stdout' | 'stderr'): void;
  exit(code: number): void;
  lose(error: Error): void;
  /** The connection drops: the stream ends with 0, the container runs on. */
  drop(): void;
  ended: boolean;
}

/** A piece of what `podman logs` holds: part of a line (end false), or a line on stderr. */
export interface HeldPiece {
  text: string;
  end?: boolean;
  stream?: 'stdout' | 'stderr';
}

export class FakePodman implements PodmanPort {
  readonly secrets = new Set<string>();
  readonly containers = new Map<string, 'created' | 'running' | 'exited'>();
  /** Every value given to createSecret, by secret name, to check that none shows anywhere else. */
  readonly values = new Map<string, Buffer>();
  /** What readContainerFiles finds in a container left running by an earlier daemon. */
  readonly files = new Map<string, Map<string, Buffer>>();
  readonly calls: Call[] = [];
  readonly streams: Stream[] = [];
  readonly created: CreateContainerOptions[] = [];
  /** Exit codes of the containers that exited, by name. */
  readonly exitCodes = new Map<string, number>();
  /** A remote host: the runner checks the end of a stream with the engine. */
  remote = false;
  /** How long an inspect takes (as a real one does, ~30 ms): what the daemon does meanwhile happens. */
  inspectDelayMs = 0;
  /** The host does not answer (see goDown): calls fail as podman fails when it cannot connect. */
  private down = false;
  /** `auto`: every call succeeds at once (containers still wait for the test to exit them). */
  constructor(private readonly mode: 'manual' | 'auto' = 'manual') {}

  /**
   * The host stops answering: open streams end as podman's do when the connection drops (exit 0), the
   * containers run on, and every call fails as unreachable until comeBack().
   */
  goDown(): void {
    this.down = true;
    for (const stream of this.streams) stream.drop();
    for (const [name, waiter] of this.waiting) {
      this.waiting.delete(name);
      waiter(this.unreachable('wait'));
    }
  }

  comeBack(): void {
    this.down = false;
  }

  private unreachable(op: string): PodmanError {
    const stderr =
      'Error: unable to connect to Podman socket: Get "http://d/v4.3.1/libpod/_ping": dial unix /run/h.sock: connect: connection refused';
    return new PodmanError('PODMAN_UNREACHABLE', `${op}: cannot reach the Podman host`, {
      operation: op,
      argv: [op],
      exitCode: 125,
      stderr,
    });
  }

  /** The oldest unsettled call of `op`. */
  pending(op: Operation): Call | undefined {
    return this.calls.find((c) => c.op === op && !c.settled);
  }

  unsettled(): Call[] {
    return this.calls.filter((c) => !c.settled);
  }

  stream(): Stream | undefined {
    return this.streams.find((s) => !s.ended);
  }

  /** The setup marker of a container this port created. */
  markerOf(container: string): string {
    return this.created.find((c) => c.name === container)?.env.AGENTD_SETUP_MARKER ?? '';
  }

  /** Puts a running container in place, as an earlier daemon left it, with its secret copies. */
  leaveRunning(options: CreateContainerOptions, files = new Map<string, Buffer>()): void {
    this.created.push(options);
    this.files.set(options.name, files);
    this.containers.set(options.name, 'running');
  }

  private call(
    op: Operation,
    names: string[],
    signal: AbortSignal | undefined,
    effect: () => void,
  ): Promise<void> {
    if (this.down) return Promise.reject(this.unreachable(op));
    return new Promise<void>((resolve, reject) => {
      const call: Call = {
        op,
        names,
        signal,
        settled: false,
        succeed: () => {
          if (call.settled) return;
          call.settled = true;
          effect();
          resolve();
        },
        fail: (message = 'injected failure') => {
          if (call.settled) return;
          call.settled = true;
          reject(
            new PodmanError(
              'PODMAN_FAILED',
              `${op} ${names.join(' ')} failed (exit 125): Error: ${message}`,
              {
                operation: `${op} ${names.join(' ')}`,
                argv: [op, ...names],
                exitCode: 125,
                stderr: `Error: ${message}`,
              },
            ),
          );
        },
      };
      this.calls.push(call);
      // An aborted removal or stop is simply over. An aborted create is not: podman may have made the
      // object anyway, so it stays for the test to settle either way.
      if (op !== 'createSecret' && op !== 'createContainer')
        signal?.addEventListener('abort', () => call.fail('aborted'));
      if (this.mode === 'auto') queueMicrotask(() => call.succeed());
    });
  }

  async version(): Promise<string> {
    return '4.3.1';
  }

  async probe(): Promise<string> {
    return '4.3.1';
  }

  async imageExists(): Promise<boolean> {
    return true;
  }

  createSecret(
    name: string,
    value: Uint8Array,
    _labels: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<void> {
    this.values.set(name, Buffer.from(value));
    // An aborted create may have made its secret all the same: only the test's settling says.
    return this.call('createSecret', [name], signal, () => this.secrets.add(name));
  }

  async listSecretNames(): Promise<string[]> {
    return [...this.secrets];
  }

  async secretLabels(): Promise<Map<string, Record<string, string>>> {
    return new Map();
  }

  removeSecrets(names: string[], signal?: AbortSignal): Promise<void> {
    return this.call('removeSecrets', names, signal, () => {
      for (const name of names) this.secrets.delete(name);
    });
  }

  async createContainer(options: CreateContainerOptions): Promise<string> {
    await this.call('createContainer', [options.name], options.signal, () => {
      this.created.push(options);
      this.containers.set(options.name, 'created');
    });
    return options.name;
  }

  /**
   * `podman run` (without `--rm`): the container exists from the start of the call (a cut-short run may
   * leave it), runs at once, and stays once it has exited, for teardown to remove.
   */
  runAttached(options: CreateContainerOptions, onLine: OutputHandler, signal?: AbortSignal): AttachedRun {
    this.calls.push({
      op: 'runAttached',
      names: [options.name],
      signal,
      settled: true,
      succeed: () => {},
      fail: () => {},
    });
    this.created.push(options);
    this.containers.set(options.name, 'running');
    // Cut short, podman run goes on until its container has ended (the test says when: exit()).
    return this.open(options.name, onLine, signal, undefined, false);
  }

  startAttached(name: string, onLine: OutputHandler, signal?: AbortSignal): AttachedRun {
    this.containers.set(name, 'running');
    return this.open(name, onLine, signal);
  }

  followLogs(
    name: string,
    since: string | undefined,
    onLine: OutputHandler,
    signal?: AbortSignal,
  ): AttachedRun {
    if (this.down) {
      return {
        exitCode: Promise.reject(this.unreachable('logs')),
        stderr: () => '',
        pause: () => {},
        resume: () => {},
      };
    }
    return this.open(name, onLine, signal, since);
  }

  /** What `podman logs` (not following) holds of a container: nothing unless a test puts it here. */
  readonly held = new Map<string, (string | HeldPiece)[]>();
  /** The `since` of each readLogs call, in order. */
  readonly reads: (string | undefined)[] = [];

  readLogs(name: string, since: string | undefined, onLine: OutputHandler): AttachedRun {
    this.reads.push(since);
    const lines = this.held.get(name) ?? [];
    return {
      exitCode: this.down
        ? Promise.reject(this.unreachable('logs'))
        : Promise.resolve().then(() => {
            for (const line of lines)
              if (typeof line === 'string') onLine(line, true, 'stdout');
              else onLine(line.text, line.end ?? true, line.stream ?? 'stdout');
            return 0;
          }),
      stderr: () => '',
      pause: () => {},
      resume: () => {},
    };
  }

  private open(
    name: string,
    onLine: OutputHandler,
    signal?: AbortSignal,
    since?: string,
    endOnAbort = true,
  ): AttachedRun {
    let settle!: (code: number) => void;
    let lose!: (error: Error) => void;
    const exitCode = new Promise<number>((resolve, reject) => {
      settle = resolve;
      lose = reject;
    });
    const stream: Stream = {
      container: name,
      signal,
      ...(since === undefined ? {} : { since }),
      ended: false,
      line: (text) => {
        if (!stream.ended) onLine(text, true, 'stdout');
      },
      piece: (text, end, on = 'stdout') => {
        if (!stream.ended) onLine(text, end, on);
      },
      exit: (code) => {
        if (stream.ended) return;
        stream.ended = true;
        if (this.containers.has(name)) this.containers.set(name, 'exited');
        this.exitCodes.set(name, code);
        this.waiting.get(name)?.(code);
        settle(code);
      },
      drop: () => {
        if (stream.ended) return;
        stream.ended = true;
        settle(0);
      },
      lose: (error) => {
        if (stream.ended) return;
        stream.ended = true;
        // The engine went away: `wait` on the container fails as well.
        this.waiting.get(name)?.(error);
        lose(error);
      },
    };
    // Detaching ends the stream; the container runs on.
    signal?.addEventListener('abort', () => {
      if (endOnAbort && !stream.ended) {
        stream.ended = true;
        settle(-1);
      }
    });
    this.streams.push(stream);
    // Output is handed on at once; there is no pipe to pause.
    return { exitCode, stderr: () => '', pause: () => {}, resume: () => {} };
  }

  private readonly waiting = new Map<string, (result: number | Error) => void>();

  wait(name: string): Promise<number> {
    if (this.down) return Promise.reject(this.unreachable('wait'));
    const code = this.exitCodes.get(name);
    if (this.containers.get(name) === 'exited' && code !== undefined) return Promise.resolve(code);
    return new Promise((resolve, reject) =>
      this.waiting.set(name, (result) => (result instanceof Error ? reject(result) : resolve(result))),
    );
  }

  async inspectContainer(name: string): Promise<ContainerInspect | undefined> {
    if (this.down) throw this.unreachable('inspect');
    if (this.inspectDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.inspectDelayMs));
    const options = this.created.find((c) => c.name === name);
    if (!options || !this.containers.has(name)) return undefined;
    const env = Object.entries(options.env).map(([k, v]) => `${k}=${v}`);
    const state = this.containers.get(name) ?? 'exited';
    return {
      Id: name,
      Name: name,
      State: {
        Status: state,
        Running: state === 'running',
        ExitCode: this.exitCodes.get(name) ?? 0,
        ...(this.startedAt.has(name) ? { StartedAt: this.startedAt.get(name) } : {}),
        ...(this.finishedAt.has(name) ? { FinishedAt: this.finishedAt.get(name) } : {}),
      },
      Config: { Env: env, Labels: options.labels },
    };
  }

  /** When containers exited, as `inspect` says (State.FinishedAt), by name. */
  readonly finishedAt = new Map<string, string>();

  /** When containers started, as `inspect` says (State.StartedAt), by name; unset: Podman's zero time. */
  readonly startedAt = new Map<string, string>();

  /**
   * Its host restarted while the container ran: Podman 4 makes it `created` again (listed so), Podman 5
   * `exited` with its exit never recorded (Podman's zero time); exit code 0, its start time kept.
   */
  resetByRestart(name: string, podman: 4 | 5 = 4): void {
    this.containers.set(name, podman === 4 ? 'created' : 'exited');
    this.exitCodes.set(name, 0);
    this.startedAt.set(name, '2026-12-05T10:00:00.000000000Z');
    if (podman === 5) this.finishedAt.set(name, '0001-01-01T00:00:00Z');
  }

  /** The container exits while nobody follows it (its host was away, say). */
  exitUnwatched(name: string, code: number): void {
    this.containers.set(name, 'exited');
    this.exitCodes.set(name, code);
  }

  /** The container's copies of its secrets: those it was created with, or those given to leaveRunning. */
  async readContainerFiles(name: string, _dir: string, signal?: AbortSignal): Promise<Map<string, Buffer>> {
    await this.call('readContainerFiles', [name], signal, () => {});
    const given = this.files.get(name);
    if (given) return given;
    const options = this.created.find((c) => c.name === name);
    const files = new Map<string, Buffer>();
    for (const secret of options?.secrets ?? []) {
      const value = this.values.get(secret.name);
      if (value) files.set(secret.target.split('/').pop() ?? secret.name, value);
    }
    return files;
  }

  /**
   * Podman's copies of a container's secrets on this machine, by secret name: the values of those it
   * was created with (kept after their removal, as Podman keeps them), or those a test sets in
   * `secretCopies` (by container). A remote host's are out of reach.
   */
  readonly secretCopies = new Map<string, Map<string, Buffer>>();

  async readSecretCopies(container: ContainerInspect): Promise<Map<string, Buffer>> {
    const name = container.Name;
    await this.call('readSecretCopies', [name], undefined, () => {});
    if (this.remote) throw new Error('readSecretCopies on a remote host');
    const given = this.secretCopies.get(name);
    if (given) return new Map([...given].map(([secret, bytes]) => [secret, Buffer.from(bytes)]));
    const options = this.created.find((c) => c.name === name);
    const copies = new Map<string, Buffer>();
    for (const secret of options?.secrets ?? []) {
      const value = this.values.get(secret.name);
      if (value) copies.set(secret.name, Buffer.from(value));
    }
    return copies;
  }

  /** What was copied into containers (tar bytes) and out of them (paths), in order. */
  readonly copies: { container: string; into?: number; from?: string; to?: string }[] = [];

  async copyIntoContainer(name: string, archive: Uint8Array): Promise<void> {
    if (this.down) throw this.unreachable('cp');
    this.copies.push({ container: name, into: archive.byteLength });
  }

  async copyFromContainer(name: string, from: string, to: string): Promise<void> {
    if (this.down) throw this.unreachable('cp');
    this.copies.push({ container: name, from, to });
  }

  stopContainer(name: string, _graceSeconds: number, signal?: AbortSignal): Promise<void> {
    return this.call('stopContainer', [name], signal, () => {});
  }

  removeContainers(names: string[], signal?: AbortSignal): Promise<void> {
    return this.call('removeContainers', names, signal, () => {
      for (const name of names) this.containers.delete(name);
    });
  }

  async listContainers(): Promise<ContainerSummary[]> {
    return [];
  }

  readonly volumes = new Map<string, Record<string, string>>();

  async ensureVolume(name: string, labels: Record<string, string>): Promise<void> {
    if (!this.volumes.has(name)) this.volumes.set(name, labels);
  }

  async listVolumes(
    filters: Record<string, string>,
  ): Promise<{ name: string; labels: Record<string, string> }[]> {
    return [...this.volumes]
      .filter(([, labels]) => Object.entries(filters).every(([k, v]) => labels[k] === v))
      .map(([name, labels]) => ({ name, labels }));
  }

  async removeVolumes(names: string[]): Promise<void> {
    for (const name of names) this.volumes.delete(name);
  }
}

/**
 * A host that answers `inspect` (the container runs) but whose `logs --follow` and `wait` fail once
 * `broken`: every follow ends at once, and the runner goes round following → lost → checking → following.
 */
export class UnfollowablePodman extends FakePodman {
  broken = false;
  follows = 0;
  /** How long a broken `wait` takes to fail. */
  failAfterMs = 0;

  override followLogs(...args: Parameters<FakePodman['followLogs']>): ReturnType<FakePodman['followLogs']> {
    if (!this.broken) return super.followLogs(...args);
    this.follows++;
    return { exitCode: new Promise<number>(() => {}), stderr: () => '', pause: () => {}, resume: () => {} };
  }

  override wait(name: string): Promise<number> {
    if (!this.broken) return super.wait(name);
    const error = new Error('wait: the connection to the host dropped');
    if (this.failAfterMs === 0) return Promise.reject(error);
    return new Promise((_, reject) => setTimeout(() => reject(error), this.failAfterMs));
  }
}

/** An UnfollowablePodman as a remote host (the runner asks it whether the container lives).*/
export function unfollowable(): UnfollowablePodman {
  const podman = new UnfollowablePodman('auto');
  podman.remote = true;
  return podman;
}
