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

/** The running agents as a reload's thread compares them: names and agentFingerprint, in their order. */
export interface Fingerprints {
  names: string[];
  digests: string[];
}

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
 * The thread's answer: the settings with each agent the file leaves as it runs given as its index in
 * `running` (not copied back, nor compared again: 12,500 agents cost 100 ms to copy and 600 ms to compare
 * on the daemon's thread), and the fingerprints of its agents for the next reload's thread; or the error.
 */
export type ReloadAnswer =
  | { settings: Omit<Settings, 'agents'> & { agents: (AgentConfig | number)[] }; fingerprints: Fingerprints }
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
  const running = Array.isArray(job.running)
    ? fingerprintsOf(job.running as readonly AgentConfig[])
    : (job.running as Fingerprints);
  const byName = new Map(running.names.map((name, index) => [name, index]));
  const fingerprints = fingerprintsOf(settings.agents);
  const agents = settings.agents.map((agent, at) => {
    const index = byName.get(agent.name);
    return index !== undefined && running.digests[index] === fingerprints.digests[at] ? index : agent;
  });
  return { settings: { ...settings, agents }, fingerprints };
}

function fingerprintsOf(agents: readonly AgentConfig[]): Fingerprints {
  return { names: agents.map((a) => a.name), digests: agents.map(agentFingerprint) };
}

/** The settings of an answer, with the running definitions in place; throws its error. */
export function settingsOf(answer: ReloadAnswer, running: readonly AgentConfig[]): Settings {
  if ('error' in answer) throw rebuiltError(answer.error);
  const agents = answer.settings.agents.map((agent) => {
    if (typeof agent !== 'number') return agent;
    const found = running[agent];
    if (found === undefined)
      throw new AgentdError('INTERNAL', `the reload's thread named agent ${agent} of ${running.length}`);
    return found;
  });
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
        thread.once('message', (answer: ReloadAnswer) => {
          clearTimeout(timer);
          try {
            const settings = settingsOf(answer, running);
            if ('fingerprints' in answer) fingerprints.set(settings.agents, answer.fingerprints);
            resolve(settings);
          } catch (error) {
            reject(error);
          }
          void thread.terminate();
        });
        thread.once('error', (error) => {
          failure = error;
        });
        // After a message this changes nothing: the promise is settled.
        thread.once('exit', (code) => {
          clearTimeout(timer);
          threads.delete(thread);
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
