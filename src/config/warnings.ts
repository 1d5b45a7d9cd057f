import { hideSecretParts } from './quoted.js';
import type { AgentConfig } from './types.js';

/**
 * What a valid configuration allows that weakens containment, said without refusing it: `validate`
 * prints it, `start` logs it (a preflight warning) and `doctor` shows it.
 */
export interface ConfigWarning {
  /** Key path like `agents[1].cap_add`. */
  path: string;
  agent: string;
  message: string;
  fix: string;
}

/**
 * Capabilities that reach the network below the agent's own connections: NET_RAW opens packet
 * sockets (measured: a bridge session saw other sessions' ARP traffic, the first step to spoofing
 * it), NET_ADMIN changes addresses, routes and filters.
 */
const NETWORK_CAPABILITIES = ['NET_RAW', 'NET_ADMIN'] as const;

export function configWarnings(settings: { agents: readonly AgentConfig[] }): ConfigWarning[] {
  const warnings: ConfigWarning[] = [];
  settings.agents.forEach((agent, i) => {
    warnings.push(...pastedValueWarnings(agent, i));
    if (agent.network === 'none') return;
    const caps = NETWORK_CAPABILITIES.filter((c) => agent.capAdd.includes(c));
    if (caps.length === 0) return;
    const which = caps.join(' and ');
    const reach =
      agent.network === 'host'
        ? "this host's traffic, other sessions' and the daemon's included"
        : "other sessions' traffic on the shared bridge";
    warnings.push({
      path: `agents[${i}].cap_add`,
      agent: agent.name,
      message: `${which} with network: ${agent.network}: the agent's sessions can read and forge ${reach}${
        agent.network === 'host' && caps.includes('NET_ADMIN')
          ? ", and change the host's addresses, routes and firewall"
          : ''
      }`,
      fix: `remove ${which} from cap_add, or give the agent network: none`,
    });
  });
  return warnings;
}

/**
 * A command argument or env value with a part that looks like a credential value (hideSecretParts):
 * the command is on the host's process list (`podman run`'s arguments) and the container's, env values
 * in `podman inspect`, and both reach any process in the container. `agents` and `validate` show such a
 * part as `<hidden>`; the warning says where it is, never the part.
 */
function pastedValueWarnings(agent: AgentConfig, i: number): ConfigWarning[] {
  const warnings: ConfigWarning[] = [];
  const fix = (what: string) =>
    `move the value to a credential (credentials: [{ name: NAME, source: env:... or file:... }]) and use $NAME ${what}`;
  agent.command.forEach((arg, j) => {
    if (hideSecretParts(arg) === arg) return;
    warnings.push({
      path: `agents[${i}].command[${j}]`,
      agent: agent.name,
      message:
        "holds what looks like a credential value: a command is on this host's process list and visible to every process in the container (shown as <hidden> by agents and validate)",
      fix: fix('in the command (through sh -c)'),
    });
  });
  for (const [name, value] of Object.entries(agent.env)) {
    if (hideSecretParts(value) === value) continue;
    warnings.push({
      path: `agents[${i}].env.${name}`,
      agent: agent.name,
      message:
        "holds what looks like a credential value: env values are plain, in the container's configuration (podman inspect) and never masked in the session's output",
      fix: fix('instead of this variable'),
    });
  }
  return warnings;
}
