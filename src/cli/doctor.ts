import { Command, Option } from 'clipanion';
import { readEnvFile } from '../config/config-file.js';
import { type CheckResult, podmanOfHost, runPreflight } from '../daemon/preflight.js';
import { errorMessage } from '../errors.js';
import { AgentdCommand } from './agentd-command.js';
import { failWith, printJson } from './client-io.js';
import { configOption, loadSettingsOrFailure } from './config-option.js';
import { parseEnvFile } from './env-file.js';
import { EXIT } from './exit-codes.js';

export class DoctorCommand extends AgentdCommand {
  static override paths = [['doctor']];
  static override usage = Command.Usage({
    description: 'Check that this machine can run the configured agents',
    details: `
      Checks, each reported as ok, warn or fail with a fix: the configuration; Podman and its version; a smoke
      run of a container (the setrlimit and hybrid-cgroups quirks); the seccomp profile sessions get (Podman's
      default, which agentd extends to refuse user namespaces); every agent's image (present, or pullable);
      with hosts: in the configuration, each of these on every host (reachable, its Podman version, a smoke
      run there, the images of the agents that may run there) and how it is reached (key, host key, tcp);
      every credential source (resolved and dropped: values are never shown); the ownership of the state and
      socket directories; free space in the state dir; the cgroup version (v1 leaves sessions' socket buffers
      outside their memory limit); what validate warns about. Run it as the user the daemon runs as, with the
      daemon's environment (--env-file for systemd's EnvironmentFile). Exits 0 when nothing fails.
    `,
    examples: [
      ['Check the default configuration', '$0 doctor'],
      [
        'Check a service setup',
        '$0 doctor --config /etc/agentd/agentd.yaml --env-file /etc/agentd/agentd.env',
      ],
    ],
  });

  config = configOption();
  json = Option.Boolean('--json', false, {
    description:
      'Print {"checks": [{check, status, message, fix?}], "failed", "warnings"} as one JSON object',
  });
  envFile = Option.String('--env-file', {
    description:
      'NAME=value lines added to the environment credential sources are read from (systemd EnvironmentFile=)',
  });

  async execute(): Promise<number> {
    const out = this.context.stdout;
    const settings = await loadSettingsOrFailure(this.config, this.context.stderr);
    if ('error' in settings) {
      if (this.json) {
        printJson(this.context, {
          checks: [{ check: 'configuration', status: 'fail', message: settings.message }],
          failed: 1,
          warnings: 0,
          problems: settings.problems,
        });
        return EXIT.failed;
      }
      out.write(
        'fail  configuration: see the problems above; fix them (agentd validate) and run doctor again\n',
      );
      return EXIT.failed;
    }
    let env: NodeJS.ProcessEnv = process.env;
    if (this.envFile !== undefined) {
      try {
        env = { ...process.env, ...parseEnvFile(await readEnvFile(this.envFile)) };
      } catch (error) {
        // With --json one object on stdout too, as for every failure.
        const message = `cannot read --env-file ${this.envFile}: ${errorMessage(error)}`;
        return failWith(this.context, this.json, { error: 'usage', message }, EXIT.usage);
      }
    }
    if (!this.json) out.write(`agentd doctor: ${settings.file}, ${settings.agents.length} agent(s)\n`);
    const results = await runPreflight({
      settings,
      podman: podmanOfHost(settings.daemon.podmanTimeoutMs),
      env,
      depth: 'full',
    });
    const checks: CheckResult[] = [{ check: 'configuration', status: 'ok', message: 'valid' }, ...results];
    const failed = results.filter((r) => r.status === 'fail').length;
    const warned = results.filter((r) => r.status === 'warn').length;
    if (this.json) {
      printJson(this.context, { file: settings.file, checks, failed, warnings: warned });
      return failed > 0 ? EXIT.failed : EXIT.succeeded;
    }
    out.write(formatResults(checks));
    out.write(
      failed > 0
        ? `${failed} check(s) failed, ${warned} warning(s): sessions will fail until the failures are fixed\n`
        : `no check failed${warned > 0 ? `, ${warned} warning(s)` : ''}\n`,
    );
    return failed > 0 ? EXIT.failed : EXIT.succeeded;
  }
}

export function formatResults(results: CheckResult[]): string {
  return results
    .map((r) => `${r.status.padEnd(5)} ${r.check}: ${r.message}\n${r.fix ? `      fix: ${r.fix}\n` : ''}`)
    .join('');
}
