import { createLogger, type LogFormat } from '../adapters/logger.js';
import { systemdNotifier } from '../adapters/sd-notify.js';
import { loadConfig } from '../config/load.js';
import { ownStrings } from '../config/own-strings.js';
import type { Settings } from '../config/types.js';
import { runDaemon } from '../daemon/main.js';
import { checkUserNamespaces, logPreflight } from '../daemon/preflight.js';
import { logUncaught } from '../daemon/uncaught.js';
import { AgentdError } from '../errors.js';
import type { InspectorServer } from '../inspector/server.js';
import { localUtcOffset, processTimeZone } from '../time-zone.js';
import { exitWithin } from './bounded-exit.js';
import { EXIT } from './exit-codes.js';
import type { LogLevel } from './log-options.js';
import { reportStartFailure } from './start-failure.js';
import { agentdVersion } from './version.js';

export interface StartOptions {
  config?: string | undefined;
  /** Default json. */
  logFormat?: LogFormat | undefined;
  /** Default info. */
  logLevel?: LogLevel | undefined;
  /** Serve the live inspector on this port (a checked --inspect). */
  inspectPort?: number | undefined;
}

/**
 * `agentd start`, free of clipanion: StartCommand and the quick path (quick.ts) both run it, so a
 * daemon started plainly never loads clipanion and the other commands (about 2 MB of its RSS).
 */
export async function runStart(options: StartOptions, stderr: NodeJS.WritableStream): Promise<number> {
  const log = await createLogger(options.logFormat ?? 'json', options.logLevel ?? 'info');
  // For the process's whole life: its exit is Node's, as ever.
  logUncaught(log);
  let settings: Settings;
  try {
    // Not slices of the file's text, which they would keep for the daemon's life.
    settings = ownStrings(await loadConfig(options.config === undefined ? {} : { flag: options.config }));
  } catch (error) {
    reportStartFailure(log, stderr, error);
    return EXIT.failed;
  }
  // Without the ranges every session of such an agent would fail at its start: said now, with the fix.
  const userns = checkUserNamespaces(settings).find((r) => r.status === 'fail');
  if (userns !== undefined) {
    reportStartFailure(
      log,
      stderr,
      new AgentdError('START_FAILED', `${userns.message}; to fix: ${userns.fix}`, {
        operation: 'user namespaces',
      }),
    );
    return EXIT.failed;
  }
  log.info(
    {
      event: 'daemon.starting',
      config: settings.file,
      agents: settings.agents.length,
      // What a schedule without `timezone:` follows: the zone this process has (TZ, /etc/localtime) now.
      timezone: processTimeZone(),
      // The offset its local time has now: what tells a TZ V8 could not read (kept at UTC) from the zone named.
      utcOffset: localUtcOffset(),
    },
    'agentd starting',
  );
  for (const agent of settings.agents.filter((a) => a.capAdd.length > 0)) {
    // An opt-out of the hardening, said where an operator looks.
    log.warn(
      { event: 'agent.cap_add', agent: agent.name, capabilities: agent.capAdd },
      `agent ${agent.name} runs its command with capabilities ${agent.capAdd.join(', ')} (cap_add)`,
    );
  }
  let server: InspectorServer | undefined;
  if (options.inspectPort !== undefined) {
    // Loaded only when asked for: the inspector is a development aid.
    const inspector = await import('../inspector/server.js');
    try {
      server = await inspector.startInspector({ port: options.inspectPort });
    } catch (error) {
      reportStartFailure(log, stderr, error);
      return EXIT.failed;
    }
    log.info({ event: 'inspector.listening', url: server.url }, `inspector on ${server.url}`);
  }
  // Read (and removed from the environment) before any child process starts.
  const notify = systemdNotifier({
    warn: (message) => log.warn({ event: 'daemon.notify_failed' }, message),
  });
  // The cheap checks of `agentd doctor`, beside the start: a warning per problem, and it still starts.
  const preflight = new AbortController();
  const checked = logPreflight(settings, log, preflight.signal);
  let code: number = EXIT.failed;
  try {
    code = await runDaemon({
      settings,
      log,
      notify,
      version: agentdVersion(),
      ...(server ? { inspect: server.inspect } : {}),
    });
    return code;
  } catch (error) {
    reportStartFailure(log, stderr, error);
    return EXIT.failed;
  } finally {
    // From here on nothing may hold the process for ever (what is waited for below included).
    exitWithin(code, log);
    preflight.abort();
    await checked;
    await server?.close();
    // Lines held while stderr took no writes (a full disk under the log file), written if it takes them now.
    log.flush();
    // Ended here, not by the event loop running dry: Node's teardown after that puts the signals' default
    // action back for some milliseconds (measured: a SIGTERM 2 to 9 ms after `daemon.stopped` killed the
    // daemon, exit 143), while exit() keeps taking them. The log is written synchronously.
    process.exit(code);
  }
}
