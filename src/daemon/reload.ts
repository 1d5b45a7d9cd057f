import type { Logger } from 'pino';
import type { Actor } from 'xstate';
import type { ServiceNotifier } from '../adapters/sd-notify.js';
import {
  describeChanges,
  describeRestartNeeded,
  diffConfiguration,
  hostChanges,
  listedChanges,
} from '../config/diff.js';
import { tcpHostExposure } from '../config/hosts.js';
import { ConfigError, loadConfig } from '../config/load.js';
import type { AgentConfig, Settings } from '../config/types.js';
import { AgentdError, errorMessage } from '../errors.js';
import { LogBudget } from '../log-budget.js';
import type { daemonMachine } from '../machines/daemon.machine.js';
import type { ReloadReply } from '../protocol/replies.js';
import type { CheckResult } from './check-result.js';
import { sendEvent } from './port.js';
import { checkUserNamespaces } from './preflight.js';

export interface ReloaderOptions {
  /** The settings the daemon started with: their file is re-read, their daemon section stays in force. */
  started: Pick<Settings, 'file' | 'daemon' | 'hosts'>;
  actor: Actor<typeof daemonMachine>;
  log: Logger;
  notify: ServiceNotifier;
  /**
   * Reads and validates the file (default: the same loader as `start`, in this thread; the daemon gives
   * reload-thread.ts's, which does it in a thread of its own). `running` are the agents' definitions in
   * force when the reload began: it may hand back those the file leaves as they are.
   */
  load?: (file: string, running: readonly AgentConfig[]) => Promise<Settings>;
  /**
   * The check `agentd start` refuses to start on when an agent has `user_namespace: auto` and the
   * containers ranges of /etc/subuid and /etc/subgid cannot hold a session (default: checkUserNamespaces;
   * tests give the files).
   */
  userNamespaces?: (settings: Pick<Settings, 'agents' | 'hosts' | 'daemon'>) => CheckResult[];
  /**
   * Collects the garbage a reload that changed agents leaves, once a reload however many asked for it
   * (the daemon gives collectStartGarbage). Without it the replaced definitions waited in V8's old
   * generation: 52,401 one-line agents that all changed left the daemon at 258 MB of RSS, 160 MB with it,
   * against 135 MB for a daemon started on the new file (bench/reload-memory.mjs's file). It holds the
   * event loop for one full collection (measured on a heap of 3,000 such agents: 9 to 18 ms; of 100,000:
   * 225 to 477 ms, at a load of 10 to 16), as the start's does; the largest files' reloads take seconds.
   */
  collect?: () => void;
}

/**
 * Re-reads the configuration file on SIGHUP or a `reload` request and hands the new agents and
 * max_sessions to the daemon machine, which applies them to triggers accepted from then on. An invalid
 * file changes nothing: every problem is logged and returned, and the daemon stays ready. Reloads run
 * one at a time; those asked for while one runs (while its thread reads the file) are one reload after
 * it, which reads the file as it is then.
 */
export function createReloader(
  options: ReloaderOptions,
): (trigger: 'SIGHUP' | 'request') => Promise<ReloadReply> {
  // Of the settings the daemon started with, what a reload reads: not their agents, which a reload
  // replaces (the closures below holding `started` kept every definition of the start for the daemon's
  // life), nor `options`, which holds them.
  const { file, daemon, hosts: startedHosts } = options.started;
  const { actor, notify, log: daemonLog } = options;
  const userNamespaces = options.userNamespaces ?? checkUserNamespaces;
  const { collect } = options;
  /** The same lines at debug. */
  const quiet = {
    info: daemonLog.debug.bind(daemonLog),
    warn: daemonLog.debug.bind(daemonLog),
    error: daemonLog.debug.bind(daemonLog),
  } as unknown as Logger; // Only info, warn and error are called below.
  const load = options.load ?? ((path: string) => loadConfig({ flag: path }));
  let chain: Promise<unknown> = Promise.resolve();

  // Reloads one after the other (a client asking in a loop) are logged up to a budget; past it, at debug.
  const budget = new LogBudget((_, count) =>
    daemonLog.info(
      { event: 'daemon.reloads_unlogged', count },
      `${count} reload(s) logged at debug only (more than 10 a second)`,
    ),
  );
  const reloadOnce = async (trigger: 'SIGHUP' | 'request'): Promise<ReloadReply> => {
    const log = budget.take('reload') ? daemonLog : quiet;
    log.info({ event: 'daemon.reloading', trigger, config: file }, 'reloading the configuration');
    notify.reloading(`reloading ${file}`);
    try {
      const reply = await apply(trigger, log);
      // The definitions it replaced are garbage now, in V8's old generation.
      if (reply.type === 'reloaded' && reply.counts.added + reply.counts.changed + reply.counts.removed > 0)
        collect?.();
      return reply;
    } finally {
      notify.ready(readyStatus(actor));
    }
  };

  const apply = async (trigger: string, log: Logger): Promise<ReloadReply> => {
    let next: Settings;
    try {
      next = await load(file, actor.getSnapshot().context.agents);
    } catch (error) {
      // A stop ends the reload (the loader is closed): the daemon does not keep running, nor is that an
      // error of the file's. It said "The daemon keeps running with the configuration it had.", at error.
      const snapshot = actor.getSnapshot();
      if (snapshot.matches('shutdown') || ['error', 'stopped', 'done'].includes(snapshot.status)) {
        const message = `${loadProblem(error, file)}; the daemon is shutting down: its next start reads ${file}`;
        log.info({ event: 'daemon.reload_failed', trigger, config: file, stopping: true }, message);
        return { type: 'reload_failed', file, message };
      }
      const message = `${loadProblem(error, file)}\nThe daemon keeps running with the configuration it had.`;
      log.error(
        {
          event: 'daemon.reload_failed',
          trigger,
          config: file,
          ...(error instanceof ConfigError ? { problems: error.problems } : {}),
        },
        message,
      );
      return { type: 'reload_failed', file, message };
    }
    const context = actor.getSnapshot().context;
    const changes = diffConfiguration(
      { agents: context.agents, maxSessions: context.maxSessions, daemon },
      next,
    );
    // Hosts keep running as they started; their max_sessions and labels follow the file.
    const hosts = hostChanges(startedHosts, next.hosts);
    // The loader checked the file's hosts; a host whose url changed runs with its old one until a restart,
    // and the file's agents must not reach that one either.
    const exposed = hosts.hosts.flatMap((host) => {
      const problem = tcpHostExposure(host, next.agents);
      return problem === undefined ? [] : [`hosts.${host.name}, as it runs until a restart: ${problem}`];
    });
    if (exposed.length > 0) {
      const message = `${file}: ${exposed.join('\n')}\nThe daemon keeps running with the configuration it had.`;
      log.error({ event: 'daemon.reload_failed', trigger, config: file }, message);
      return { type: 'reload_failed', file, message };
    }
    // What `agentd start` refuses to start on refuses the reload too: every session of an agent turned to
    // user_namespace: auto would end `error` for want of the ranges.
    const userns = next.agents.some((a) => a.userNamespace === 'auto')
      ? userNamespaces({ agents: next.agents, hosts: startedHosts, daemon }).find((r) => r.status === 'fail')
      : undefined;
    if (userns !== undefined) {
      const message = `${file}: ${userns.message}; to fix: ${userns.fix}\nThe daemon keeps running with the configuration it had.`;
      log.error({ event: 'daemon.reload_failed', trigger, config: file }, message);
      return { type: 'reload_failed', file, message };
    }
    changes.restartNeeded.push(...hosts.restartNeeded);
    const [answer] = sendEvent(actor, {
      type: 'reload',
      agents: next.agents,
      maxSessions: next.daemon.maxSessions,
      ...(startedHosts.length === 0
        ? {}
        : {
            hosts: hosts.hosts.map(({ name, maxSessions, labels }) => ({ name, maxSessions, labels })),
          }),
    });
    if (answer?.type !== 'reload.applied') {
      const reason = answer?.type === 'reload.rejected' ? answer.reason : 'the daemon did not answer';
      log.warn({ event: 'daemon.reload_failed', trigger, config: file }, `reload not applied: ${reason}`);
      return { type: 'reload_failed', file, message: `reload not applied: ${reason}` };
    }
    const summary = describeChanges(changes);
    // At most MAX_NAMED_AGENTS names of each change, and how many: in the reply as in the log line.
    const listed = listedChanges(answer.agents, changes);
    log.info(
      {
        event: 'daemon.reloaded',
        trigger,
        config: file,
        agents: listed.counts.agents,
        added: listed.added,
        changed: listed.changed,
        removed: listed.removed,
        counts: {
          added: listed.counts.added,
          changed: listed.counts.changed,
          removed: listed.counts.removed,
        },
        maxSessions: answer.maxSessions,
      },
      `configuration reloaded: ${summary}`,
    );
    let message = `${file}: reloaded; ${summary}. Sessions accepted from now on use it; queued and running sessions keep the definition they were accepted with.`;
    if (changes.restartNeeded.length > 0) {
      const pending = describeRestartNeeded(changes.restartNeeded);
      log.warn(
        { event: 'daemon.reload_restart_needed', config: file, settings: changes.restartNeeded },
        pending,
      );
      message += `\n${pending}.`;
    }
    return {
      type: 'reloaded',
      file,
      ...listed,
      maxSessions: answer.maxSessions,
      restartNeeded: changes.restartNeeded,
      message,
    };
  };

  /** The reload asked for that has not begun: it reads the file after every request made until it begins. */
  let waiting: Promise<ReloadReply> | undefined;
  return (trigger) => {
    // Requests that come while one waits are answered by it: a client (or a burst of SIGHUPs) asking
    // thousands of times makes one reload more, not thousands.
    if (waiting !== undefined) return waiting;
    const result = chain.then(() => {
      waiting = undefined;
      return reloadOnce(trigger);
    });
    // Not the reply (a catch passes it on): the chain would hold the last one until the next reload.
    chain = result.then(
      () => undefined,
      () => undefined,
    );
    waiting = result.catch((error: unknown) => {
      daemonLog.error({ event: 'daemon.reload_failed', trigger, err: error }, 'reload failed');
      return { type: 'reload_failed' as const, file, message: `reload failed: ${errorMessage(error)}` };
    });
    return waiting;
  };
}

/**
 * Why the file could not be loaded. One that is not there is told as a reload sees it: the loader's
 * words are the start's search (--config, $AGENTD_CONFIG, the default paths), which a reload never
 * makes; it re-reads the one file the daemon was started with.
 */
function loadProblem(error: unknown, file: string): string {
  if (error instanceof AgentdError && error.operation === 'find configuration') {
    return `the configuration file ${file} the daemon was started with is not there: a reload re-reads that file only; put it back there (to use another file, restart the daemon with --config PATH)`;
  }
  return errorMessage(error);
}

/** The STATUS= text a service manager shows next to "active (running)". */
export function readyStatus(actor: Actor<typeof daemonMachine>): string {
  const snapshot = actor.getSnapshot();
  const { agents, maxSessions, sessions, queue, stateDir } = snapshot.context;
  const state = snapshot.matches('degraded')
    ? `degraded (${stateDir?.reason ?? 'state dir takes no writes'})`
    : 'ready';
  return `${state}: ${agents.length} agent(s), ${Object.keys(sessions).length}/${maxSessions} running, ${queue.length} queued`;
}
