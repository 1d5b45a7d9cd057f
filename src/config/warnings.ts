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
