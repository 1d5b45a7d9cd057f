import { Command, Option } from 'clipanion';
import { CONTEXT_TARGET } from '../config/mounts.js';
import { parseSize } from '../config/resources.js';
import { formatDuration } from '../duration.js';
import type { AgentView } from '../sessions/agent-view.js';
import { ClientCommand } from './client-command.js';
import { failOnReply, printJson } from './client-io.js';
import { EXIT } from './exit-codes.js';
import { shownOn } from './terminal.js';

export class AgentsCommand extends ClientCommand {
  static override paths = [['agents']];
  static override usage = Command.Usage({
    description: 'List the agents the daemon runs now',
    details:
      'As the daemon has them (after any reload): image, command, repository, limits, where each credential comes from, and what its sessions reach on the host side: the hosts they may run on, user_namespace, mounts (read-only or read-write), context, caches and its own webhooks. Credential values are never shown.',
    examples: [
      ['The configured agents', '$0 agents'],
      ['As JSON, for scripts', '$0 agents --json'],
    ],
  });

  json = Option.Boolean('--json', false, { description: 'Print {"agents": [...]} as one JSON object' });

  async execute(): Promise<number> {
    const client = await this.connect(this.json);
    if (typeof client === 'number') return client;
    try {
      const reply = await client.request({ type: 'agents' });
      // One without its fields is a bad_reply already (the client checks each reply against its table).
      if (reply?.type !== 'agents') return failOnReply(this.context, this.json, reply);
      if (this.json) printJson(this.context, { agents: reply.agents });
      else this.context.stdout.write(shownOn(this.context.stdout, reply.agents.map(renderAgent).join('')));
      return EXIT.succeeded;
    } finally {
      client.close();
    }
  }
}

/**
 * memory_swap is memory plus swap, as Podman's --memory-swap: equal to memory is no swap. Said as
 * `validate` says it; "with swap 2g" read as 2g of swap.
 */
function describeSwap(memory: string, memorySwap: string): string {
  return parseSize(memorySwap)?.bytes === parseSize(memory)?.bytes ? 'no swap' : `memory+swap ${memorySwap}`;
}

/**
 * What a session can reach on the host side besides its repository and network: where it runs and as
 * which uids, the host paths it sees, its caches and the agent's own webhooks. A field a daemon before
 * it was shown did not send is left out. `validate` prints the same lines.
 */
export function reachLines(a: AgentView): string[] {
  const lines: string[] = [];
  const where: string[] = [];
  if (a.hosts !== undefined) {
    const labels = Object.entries(a.hostLabels ?? {}).map(([key, value]) => `${key}=${value}`);
    where.push(
      `hosts ${a.hosts.join(', ') || '(none)'}${labels.length === 0 ? '' : ` (host_labels ${labels.join(', ')})`}`,
    );
  }
  if (a.userNamespace !== undefined) where.push(`user_namespace ${a.userNamespace}`);
  if (where.length > 0) lines.push(`    ${where.join(', ')}`);
  for (const m of a.mounts ?? []) {
    lines.push(`    mount ${m.source} at ${m.target}, ${m.readOnly ? 'read-only' : 'read-write'}`);
  }
  if (a.context !== undefined) lines.push(`    context ${a.context} at ${CONTEXT_TARGET}, read-only`);
  if (a.caches !== undefined && a.caches.length > 0) {
    lines.push(`    caches ${a.caches.map((c) => `${c.name} at ${c.target}`).join(', ')}`);
  }
  for (const n of a.notify ?? []) {
    lines.push(
      `    notify ${n.url} (signed with ${n.secret})${n.outcomes === undefined ? '' : `, on ${n.outcomes.join(', ')}`}`,
    );
  }
  return lines;
}

/** One agent as `agentd agents` prints it. */
export function renderAgent(a: AgentView): string {
  const timeout = a.timeoutMs === undefined ? 'no timeout' : `timeout ${formatDuration(a.timeoutMs)}`;
  const credentials = a.credentials.map((c) => `${c.name} <- ${c.source}`).join(', ') || 'none';
  const lines = [
    `${a.name}: ${a.image} ${JSON.stringify(a.command)}`,
    `    repo ${a.repo ?? '(none: give one per trigger)'}, network ${a.network}, ${timeout}`,
    `    credentials ${credentials}${a.repoToken ? `, repo_token <- ${a.repoToken.source} (for ${a.repoToken.origins.join(', ')})` : ''}`,
    `    limits memory ${a.resources.memory} (${describeSwap(a.resources.memory, a.resources.memorySwap)}), ${a.resources.cpus === undefined ? 'cpus unlimited' : `cpus ${a.resources.cpus}`}, pids ${a.resources.pids}, disk ${a.resources.disk}${a.resources.output === undefined ? '' : `, output ${a.resources.output}`}${a.resources.cache === undefined ? '' : `, cache ${a.resources.cache}`}`,
  ];
  // By name only: the file calls them non-secret, but an operator may not have kept to that.
  if (a.env.length > 0) lines.push(`    env ${a.env.join(', ')} (values not shown)`);
  if (a.capAdd.length > 0) lines.push(`    cap_add ${a.capAdd.join(', ')}`);
  lines.push(...reachLines(a));
  if (a.maxConcurrent !== undefined) lines.push(`    max_concurrent ${a.maxConcurrent}`);
  if (a.schedule) {
    const s = a.schedule;
    lines.push(
      `    schedule "${s.cron}"${s.timezone === undefined ? '' : ` ${s.timezone}`}, overlap ${s.overlap}, catch_up ${s.catchUp}; ${s.failed === undefined ? `next ${s.next ?? 'never'}` : `FAILED: ${s.failed}`}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
