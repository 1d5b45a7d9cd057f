import { Command, Option, UsageError } from 'clipanion';
import { createLogger } from '../adapters/logger.js';
import { systemdNotifier } from '../adapters/sd-notify.js';
import { loadConfig } from '../config/load.js';
import type { Settings } from '../config/types.js';
import { runDaemon } from '../daemon/main.js';
import { logPreflight } from '../daemon/preflight.js';
import type { InspectorServer } from '../inspector/server.js';
import { AgentdCommand } from './agentd-command.js';
import { configOption } from './config-option.js';
import { EXIT } from './exit-codes.js';
import { reportStartFailure } from './start-failure.js';
import { isOneOf } from './validators.js';
import { agentdVersion } from './version.js';

export class StartCommand extends AgentdCommand {
  static override paths = [['start']];
  static override usage = Command.Usage({
    description: 'Run the daemon in the foreground',
    details: `
      Loads the configuration, removes what earlier runs of this instance left in Podman, binds the socket and
      runs sessions until SIGTERM or SIGINT. The first signal lets running sessions finish (queued ones are dropped);
      a second one cancels them. SIGHUP re-reads the configuration file (as \`agentd reload\` does). Logs are JSON lines
      on stderr. Under systemd use Type=notify: READY=1 is sent once the socket accepts (examples/agentd.service).
    `,
    examples: [
      ['Start with the default configuration', '$0 start'],
      ['Start with a given file and readable logs', '$0 start --config ./agentd.yaml --log-format pretty'],
      [
        'Watch the state machines live in a browser at http://127.0.0.1:7390/ (development)',
        '$0 start --inspect',
      ],
      ['The same on a free port (the URL is logged as inspector.listening)', '$0 start --inspect=0'],
    ],
  });

  config = configOption();
  logFormat = Option.String('--log-format', 'json', {
    description: 'json (default) or pretty',
    validator: isOneOf(['json', 'pretty'] as const),
  });
  logLevel = Option.String('--log-level', 'info', {
    description: 'trace, debug, info (default), warn, error',
    validator: isOneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const),
  });
  inspect = Option.String('--inspect', {
    tolerateBoolean: true,
    description:
      'Serve a live view of the state machines on http://127.0.0.1:PORT (--inspect=PORT; default 7390, 0 any free port); the URL is logged as inspector.listening',
  });

  async execute(): Promise<number> {
    // Loaded only when asked for: the inspector is a development aid.
    const inspector = this.inspect === undefined ? undefined : await import('../inspector/server.js');
    const inspectPort = inspector?.inspectorPort(this.inspect);
    if (inspectPort === null) {
      throw new UsageError(
        `--inspect takes a port from 0 to 65535 as --inspect=PORT, not "${String(this.inspect)}"`,
      );
    }
    const log = await createLogger(this.logFormat, this.logLevel);
    let settings: Settings;
    try {
      settings = await loadConfig(this.config === undefined ? {} : { flag: this.config });
    } catch (error) {
      reportStartFailure(log, this.context.stderr, error);
      return EXIT.failed;
    }
    log.info(
      { event: 'daemon.starting', config: settings.file, agents: settings.agents.length },
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
    if (inspector && inspectPort !== undefined) {
      try {
        server = await inspector.startInspector({ port: inspectPort });
      } catch (error) {
        reportStartFailure(log, this.context.stderr, error);
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
    try {
      return await runDaemon({
        settings,
        log,
        notify,
        version: agentdVersion(),
        ...(server ? { inspect: server.inspect } : {}),
      });
    } catch (error) {
      reportStartFailure(log, this.context.stderr, error);
      return EXIT.failed;
    } finally {
      preflight.abort();
      await checked;
      await server?.close();
    }
  }
}
