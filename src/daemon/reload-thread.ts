import { Worker } from 'node:worker_threads';
import { agentFingerprint } from '../config/diff.js';
import { ConfigError, type ConfigProblem, loadConfig, MAX_LISTED_PROBLEMS } from '../config/load.js';
import type { AgentConfig, Settings } from '../config/types.js';
import { AgentdError, type ErrorCode, errorMessage } from '../errors.js';

/**
 * A reload's reading and validation of the file, in a worker thread of its own (`reload-worker.ts`), so
 * that the daemon's event loop goes on while it runs: a 4 MiB file of 12,500 agents held it 5 to 10 s
 * (sessions' output unread, the socket and the HTTP API unanswered, timers late) and took its heap to
 * some 450 MB. The thread is made for one reload and ended with it; what it hands back is plain data
 * (the settings are JSON-like; an error is made again here, see errorData).
 */

/**
 * The old space a reload's thread may use, in MB. The heaviest 4 MiB files tried need 300 MB (12,500
 * agents of 15 lines) to some 750 MB (100,000 agents of one line each); the daemon's own thread has
 * V8's default, 4 GB on a 64-bit machine with 16 GB or more.
 */
export const RELOAD_HEAP_MB = 1024;

/**
 * How long a reload's thread may take, in ms. A 4 MiB file of 12,500 agents takes 5 to 10 s here; without
 * a limit a file whose checks never end held every reload after it for ever (they wait for the one under
 * way), and kept its thread and its memory until the daemon stopped.
 */
export const RELOAD_TIME_LIMIT_MS = 60_000;

/**
 * The running agents as a reload's thread compares them: names and agentFingerprint, in their order, one
 * a line (neither has a line break). Two strings, not 2 x 75,000: copied between threads in one piece.
 */
export interface Fingerprints {
  names: string;
  digests: string;
}

/**
 * How many agents the daemon's thread makes from a reload's answer before it lets the event loop turn.
 * Taking 75,000 agents back as objects (postMessage's structured clone) held it 1.8 s at once, and the
 * whole hand-over about 4 s; as text parsed this many at a time, each step is a few ms.
 */
export const AGENTS_PER_STEP = 500;

/**
 * What the thread is given: the file, and the definitions running (for the agents that did not change),
 * or their fingerprints when the thread of the reload that applied them made them.
 */
export interface ReloadJob {
  file: string;
  running: readonly AgentConfig[] | Fingerprints;
}

/** An error as the thread hands it back: what `rebuiltError` needs to make the same one. */
export interface ErrorData {
  message: string;
  code?: ErrorCode;
  operation?: string;
  config?: { file: string; problems: ConfigProblem[]; total: number };
}

/**
 * The thread's answer: the settings but their agents, and the agents as text, one a line: the JSON of a
 * definition, or the index in `running` of one the file leaves as it runs (not copied back, nor compared
 * again: 12,500 agents cost 100 ms to copy and 600 ms to compare on the daemon's thread); and the
 * fingerprints of its agents for the next reload's thread. Or the error. Strings cross between threads
 * in one piece, and the daemon's thread parses the lines a step at a time (settingsOf).
 */
export type ReloadAnswer =
  | { settings: Omit<Settings, 'agents'>; agents: string; fingerprints: Fingerprints }
  | { error: ErrorData };

/** The thread's work, in any thread: reads and validates the file, and marks the agents that did not change. */
export async function loadForReload(
  job: ReloadJob,
  load: (file: string) => Promise<Settings> = (file) => loadConfig({ flag: file }),
): Promise<ReloadAnswer> {
  let settings: Settings;
  try {
    settings = await load(job.file);
  } catch (error) {
    return { error: errorData(error) };
  }
  const given = Array.isArray(job.running)
    ? fingerprintsOf(job.running as readonly AgentConfig[])
    : (job.running as Fingerprints);
  const runningDigests = linesOf(given.digests);
  const byName = new Map(linesOf(given.names).map((name, index) => [name, index]));
  const names = settings.agents.map((a) => a.name);
  const digests = settings.agents.map(agentFingerprint);
  const agents = settings.agents.map((agent, at) => {
    const index = byName.get(agent.name);
    return index !== undefined && runningDigests[index] === digests[at]
      ? String(index)
      : JSON.stringify(agent);
  });
  const { agents: _, ...rest } = settings;
  return {
    settings: rest,
    agents: agents.join('\n'),
    fingerprints: { names: names.join('\n'), digests: digests.join('\n') },
  };
}

function fingerprintsOf(agents: readonly AgentConfig[]): Fingerprints {
  return { names: agents.map((a) => a.name).join('\n'), digests: agents.map(agentFingerprint).join('\n') };
}

/** The lines of a text of one item a line: none for an empty one. */
function linesOf(text: string): string[] {
  return text === '' ? [] : text.split('\n');
}

/** Lets the event loop turn (timers, the socket, sessions' output) between two steps. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The settings of an answer, with the running definitions in place; rejects with its error. The agents
 * are made AGENTS_PER_STEP at a time, the event loop turning in between (`pause`); nothing is applied
 * before the last one is made, so the reload stays whole or nothing.
 */
export async function settingsOf(
  answer: ReloadAnswer,
  running: readonly AgentConfig[],
  pause: () => Promise<void> = nextTurn,
): Promise<Settings> {
  if ('error' in answer) throw rebuiltError(answer.error);
  const lines = linesOf(answer.agents);
  const agents: AgentConfig[] = [];
  for (let at = 0; at < lines.length; at++) {
    if (at > 0 && at % AGENTS_PER_STEP === 0) await pause();
    const line = lines[at] as string;
    if (line.startsWith('{')) {
      agents.push(JSON.parse(line) as AgentConfig);
      continue;
    }
    const found = running[Number(line)];
    if (found === undefined)
      throw new AgentdError('INTERNAL', `the reload's thread named agent ${line} of ${running.length}`);
    agents.push(found);
  }
  return { ...answer.settings, agents };
}

/** An error as plain data: a thread's postMessage keeps neither its class nor its own fields. */
export function errorData(error: unknown): ErrorData {
  if (error instanceof ConfigError) {
    return {
      message: error.message,
      config: {
        file: error.file,
        problems: error.problems.slice(0, Math.min(error.total, MAX_LISTED_PROBLEMS)),
        total: error.total,
      },
    };
  }
  if (error instanceof AgentdError) {
    return {
      message: error.message,
      code: error.code,
      ...(error.operation === undefined ? {} : { operation: error.operation }),
    };
  }
  return { message: errorMessage(error) };
}

/** The error the thread met, as reload.ts tells it: a ConfigError's problems, an AgentdError's operation. */
export function rebuiltError(data: ErrorData): Error {
  if (data.config !== undefined)
    return new ConfigError(data.config.file, data.config.problems, data.config.total);
  if (data.code !== undefined) {
    return new AgentdError(
      data.code,
      data.message,
      data.operation === undefined ? {} : { operation: data.operation },
    );
  }
  return new Error(data.message);
}

export interface ThreadedLoader {
  /** Reads and validates the file in a thread of its own: the settings, or the error the loader threw. */
  load(file: string, running: readonly AgentConfig[]): Promise<Settings>;
  /** Ends a reload's thread under way (its load is refused) and refuses those asked for after. */
  close(): Promise<void>;
}

export interface ThreadedLoaderOptions {
  /** The thread's module (default: reload-worker.js beside this one, in dist/). */
  worker?: URL;
  /** Old space of the thread, in MB. */
  heapMb?: number;
  /** How long the thread may take, in ms, before it is ended and its reload refused. */
  timeLimitMs?: number;
}

export function createThreadedLoader(options: ThreadedLoaderOptions = {}): ThreadedLoader {
  const url = options.worker ?? new URL('./reload-worker.js', import.meta.url);
  const heapMb = options.heapMb ?? RELOAD_HEAP_MB;
  const timeLimitMs = options.timeLimitMs ?? RELOAD_TIME_LIMIT_MS;
  const threads = new Set<Worker>();
  /** The fingerprints of the agents each answer handed back; the machine keeps the array a reload applied. */
  const fingerprints = new WeakMap<readonly AgentConfig[], Fingerprints>();
  let closed = false;
  const stopping = () =>
    new AgentdError(
      'INTERNAL',
      'the daemon is stopping: the file was not read to the end and nothing changed',
      {
        operation: 'reload configuration',
      },
    );

  return {
    load(file, running) {
      if (closed) return Promise.reject(stopping());
      return new Promise<Settings>((resolve, reject) => {
        let thread: Worker;
        try {
          thread = new Worker(url, {
            workerData: { file, running: fingerprints.get(running) ?? running } satisfies ReloadJob,
            resourceLimits: { maxOldGenerationSizeMb: heapMb },
          });
        } catch (error) {
          reject(threadFailed(file, error, heapMb));
          return;
        }
        threads.add(thread);
        let failure: unknown;
        // The thread's checks may not end (or end after hours): it is ended, and the reloads waiting behind
        // this one go on.
        const timer = setTimeout(() => {
          reject(tooSlow(file, timeLimitMs));
          void thread.terminate();
        }, timeLimitMs);
        let answered = false;
        thread.once('message', (answer: ReloadAnswer) => {
          answered = true;
          clearTimeout(timer);
          void thread.terminate();
          settingsOf(answer, running).then((settings) => {
            // A stop while the agents were made: the reload is refused, as one whose thread it ended.
            if (closed) {
              reject(stopping());
              return;
            }
            if ('fingerprints' in answer) fingerprints.set(settings.agents, answer.fingerprints);
            resolve(settings);
          }, reject);
        });
        thread.once('error', (error) => {
          failure = error;
        });
        // After a message this changes nothing: the answer settles the promise.
        thread.once('exit', (code) => {
          clearTimeout(timer);
          threads.delete(thread);
          if (answered) return;
          if (closed) reject(stopping());
          else if (failure !== undefined) reject(threadFailed(file, failure, heapMb));
          else
            reject(
              new AgentdError('INTERNAL', `the reload's thread ended (exit code ${code}) without an answer`, {
                operation: 'reload configuration',
              }),
            );
        });
      });
    },
    async close() {
      closed = true;
      await Promise.all([...threads].map((thread) => thread.terminate()));
    },
  };
}

function tooSlow(file: string, limitMs: number): AgentdError {
  return new AgentdError(
    'INTERNAL',
    `reading and checking ${file} took more than the ${limitMs / 1000} s a reload may take, and was ended; make it smaller (an agent of thousands of mounts takes minutes to check; agentd validate --config ${file} shows how long), or restart the daemon to load it (a start has no such limit)`,
    { operation: 'reload configuration' },
  );
}

function threadFailed(file: string, error: unknown, heapMb: number): AgentdError {
  const code = (error as { code?: unknown } | undefined)?.code;
  const message =
    code === 'ERR_WORKER_OUT_OF_MEMORY'
      ? `reading ${file} took more than the ${heapMb} MB of memory a reload may use; make the file smaller (fewer agents, fewer anchors and aliases), or restart the daemon to load it`
      : `the reload's thread failed: ${errorMessage(error)}`;
  return new AgentdError('INTERNAL', message, { operation: 'reload configuration', cause: error });
}
