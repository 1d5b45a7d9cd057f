import { Command, Option } from 'clipanion';
import { formatDuration } from '../duration.js';
import type { HostStatus } from '../protocol/replies.js';
import { ClientCommand } from './client-command.js';
import { failOnReply } from './client-io.js';
import { EXIT } from './exit-codes.js';
import { jsonText, shownOn } from './terminal.js';

export class HostsCommand extends ClientCommand {
  static override paths = [['hosts']];
  static override usage = Command.Usage({
    description: 'List the Podman hosts sessions run on, with their state and sessions',
    details: `
      One line per host: its name, state (up, down, reconciling, or failed: the daemon's supervision of it
      failed, see below; drained when no new sessions go there),
      running/max sessions, how agentd reaches it, its Podman version and the last probe. Without hosts: in
      the configuration, the one host is \`local\`, the Podman of this machine.
    `,
    examples: [
      ['List the hosts', '$0 hosts'],
      ['The hosts as JSON, for scripts', '$0 hosts --json'],
      ['Stop placing new sessions on a host', '$0 hosts drain build2'],
    ],
  });

  json = Option.Boolean('--json', false, { description: 'Print the hosts as one JSON object' });

  async execute(): Promise<number> {
    const client = await this.connect(this.json);
    if (typeof client === 'number') return client;
    try {
      const reply = await client.request({ type: 'hosts' });
      if (reply?.type !== 'hosts') return failOnReply(this.context, this.json, reply);
      this.context.stdout.write(
        this.json
          ? `${jsonText({ hosts: reply.hosts })}\n`
          : shownOn(this.context.stdout, renderHosts(reply.hosts, Date.now())),
      );
      return EXIT.succeeded;
    } finally {
      client.close();
    }
  }
}

export function renderHosts(hosts: readonly HostStatus[], now: number): string {
  const rows = hosts.map((h) => {
    const state = h.drained ? `${h.state},drained` : h.state;
    const probe =
      h.lastProbe === undefined
        ? 'not probed yet'
        : `${h.lastProbe.ok ? `ok ${h.lastProbe.ms ?? '?'}ms` : 'failed'} ${formatDuration(Math.max(0, now - Date.parse(h.lastProbe.at)))} ago`;
    const labels = Object.entries(h.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    return [
      h.name,
      state,
      `${h.running}/${h.maxSessions}`,
      h.url ?? 'local podman',
      h.version ?? '-',
      probe,
      labels || '-',
    ];
  });
  const header = ['HOST', 'STATE', 'SESSIONS', 'URL', 'PODMAN', 'LAST PROBE', 'LABELS'];
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const problems = hosts
    .filter((h) => h.problem !== undefined)
    .map((h) =>
      h.state === 'failed'
        ? `${h.name}: failed: ${h.problem}`
        : `${h.name}: down since ${h.downSince ?? '?'}: ${h.problem}`,
    );
  return `${[line(header), ...rows.map(line), ...(problems.length > 0 ? ['', ...problems] : [])].join('\n')}\n`;
}
