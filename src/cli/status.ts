import { Command, Option } from 'clipanion';
import { formatDuration } from '../duration.js';
import { ClientCommand } from './client-command.js';
import { EXIT } from './exit-codes.js';

interface StatusReply {
  state: string;
  pid: number;
  version: string;
  socket: string;
  uptimeMs: number;
  maxSessions: number;
  running: { id: string; agent: string; repo: string; phase: string; elapsedMs: number }[];
  queued: { id: string; agent: string; repo: string; position: number; waitingMs: number }[];
  recent: {
    id: string;
    agent: string;
    repo: string;
    outcome?: string;
    exitCode?: number;
    finishedAt?: string;
    durationMs?: number;
    message?: string;
  }[];
}

export class StatusCommand extends ClientCommand {
  static override paths = [['status']];
  static override usage = Command.Usage({
    description: 'Show the daemon state, running and queued sessions, and the last outcomes',
    examples: [
      ['Human-readable status', '$0 status'],
      ['Status as JSON, for scripts', '$0 status --json'],
    ],
  });

  json = Option.Boolean('--json', false, { description: 'Print the status as one JSON object' });

  async execute(): Promise<number> {
    const client = await this.connect();
    if (typeof client === 'number') return client;
    try {
      const reply = await client.request({ type: 'status' });
      if (reply?.type !== 'status')
        return this.fail(`unexpected reply: ${JSON.stringify(reply)}`, EXIT.infrastructure);
      const { type: _type, v: _v, ...status } = reply;
      if (this.json) {
        this.context.stdout.write(`${JSON.stringify(status)}\n`);
        return EXIT.succeeded;
      }
      this.context.stdout.write(render(status as unknown as StatusReply));
      return EXIT.succeeded;
    } finally {
      client.close();
    }
  }
}

function render(s: StatusReply): string {
  const lines = [
    `agentd ${s.version}: ${s.state}, pid ${s.pid}, up ${formatDuration(s.uptimeMs)}, socket ${s.socket}`,
    `running ${s.running.length}/${s.maxSessions}, queued ${s.queued.length}`,
  ];
  if (s.running.length > 0) {
    lines.push('', 'RUNNING');
    for (const r of s.running)
      lines.push(`  ${r.id}  ${r.agent}  ${r.phase}  ${formatDuration(r.elapsedMs)}  ${r.repo}`);
  }
  if (s.queued.length > 0) {
    lines.push('', 'QUEUED');
    for (const q of s.queued)
      lines.push(`  ${q.id}  ${q.agent}  #${q.position}  waiting ${formatDuration(q.waitingMs)}  ${q.repo}`);
  }
  if (s.recent.length > 0) {
    lines.push('', 'RECENT');
    for (const r of s.recent) {
      const code = r.exitCode === undefined ? '' : ` (exit ${r.exitCode})`;
      const took = r.durationMs === undefined ? '' : `  ${formatDuration(r.durationMs)}`;
      lines.push(
        `  ${r.id}  ${r.agent}  ${r.outcome ?? '?'}${code}${took}  ${r.finishedAt ?? ''}  ${r.repo}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
