import { Command, Option, UsageError } from 'clipanion';
import { AgentdCommand } from './agentd-command.js';
import { configOption } from './config-option.js';
import { LOG_FORMATS, LOG_LEVELS } from './log-options.js';
import { isOneOf } from './validators.js';

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
  // No defaults here (runStart has them): the quick path must read a plain command line alike.
  logFormat = Option.String('--log-format', {
    description: 'json (default) or pretty',
    validator: isOneOf(LOG_FORMATS),
  });
  logLevel = Option.String('--log-level', {
    description: 'trace, debug, info (default), warn, error',
    validator: isOneOf(LOG_LEVELS),
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
    const { runStart } = await import('./start-run.js');
    return runStart(
      { config: this.config, logFormat: this.logFormat, logLevel: this.logLevel, inspectPort },
      this.context.stderr,
    );
  }
}
