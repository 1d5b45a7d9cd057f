import { Command, Option } from 'clipanion';
import { AgentdCommand } from './agentd-command.js';
import { configOption } from './config-option.js';

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
    const { runDoctor } = await import('./doctor-run.js');
    return runDoctor({ config: this.config, json: this.json, envFile: this.envFile }, this.context);
  }
}
