import { Command, Option } from 'clipanion';
import { formatDuration } from '../duration.js';
import type { SessionRecord } from '../sessions/records.js';
import { ClientCommand } from './client-command.js';
import { failOnReply, printJson } from './client-io.js';
import { EXIT } from './exit-codes.js';
import { outcomeText } from './format.js';
import { shownOn } from './terminal.js';
import { isSessionId } from './validators.js';

export class ShowCommand extends ClientCommand {
  static override paths = [['show']];
  static override usage = Command.Usage({
    description: "Show one session's record, whole",
    details:
      'Queued, running or finished: what was triggered, every phase with its time, the outcome (and its kind) and why, the image, commit, request and inputs, the output kept, and the sealed record directory (`agentd export` writes it as a tar.gz). Sessions that history no longer lists are shown from their sealed record. Exits 0, or 6 when the daemon keeps no record of the session.',
    examples: [
      ['A session', '$0 show 3f9c2a71b0d4e812'],
      ['Its record as JSON (the fields are in docs/protocol.md)', '$0 show 3f9c2a71b0d4e812 --json'],
    ],
  });

  sessionId = Option.String({ name: 'session-id', validator: isSessionId });
  json = Option.Boolean('--json', false, { description: 'Print the record as one JSON object' });

  async execute(): Promise<number> {
    const client = await this.connect(this.json);
    if (typeof client === 'number') return client;
    try {
      const reply = await client.request({ type: 'show', sessionId: this.sessionId });
      if (reply?.type !== 'session') return failOnReply(this.context, this.json, reply);
      if (this.json) printJson(this.context, reply.record);
      else this.context.stdout.write(shownOn(this.context.stdout, render(reply.record)));
      return EXIT.succeeded;
    } finally {
      client.close();
    }
  }
}

function render(r: SessionRecord): string {
  const rows: [string, string | undefined][] = [
    ['agent', r.agent],
    ['repo', r.repo],
    ['work unit', r.workUnit],
    ['key', r.key],
    ['timeout', r.timeoutMs === undefined ? undefined : formatDuration(r.timeoutMs)],
    ['outcome', r.outcome === undefined ? `none yet (${r.phase})` : outcomeText(r)],
    ['exit code', r.exitCode === undefined ? undefined : String(r.exitCode)],
    ['signal', r.signal],
    ['message', r.message],
    ['accepted', r.acceptedAt],
    ['started', r.startedAt],
    ['finished', r.finishedAt],
    ['duration', r.durationMs === undefined ? undefined : formatDuration(r.durationMs)],
    ['container', r.container],
    ['image', r.image === undefined ? undefined : `${r.image}${r.imageDigest ? ` (${r.imageDigest})` : ''}`],
    ['commit', r.commit],
    ['request', r.request === undefined ? undefined : `${r.request.bytes} bytes, sha256 ${r.request.sha256}`],
    ['inputs', r.inputs?.map((i) => `${i.name} (${i.bytes} bytes)`).join(', ')],
    ['output', outputText(r)],
    ['record', r.recordDir],
  ];
  const start = Date.parse(r.acceptedAt);
  const phases = r.phases.map((p) => `${p.phase} +${formatDuration(Date.parse(p.at) - start)}`).join(', ');
  const lines = [`session ${r.id}`];
  for (const [name, value] of rows) if (value !== undefined) lines.push(`  ${name.padEnd(10)} ${value}`);
  lines.push(`  ${'phases'.padEnd(10)} ${phases}`);
  return `${lines.join('\n')}\n`;
}

/** What the session left in /agentd/out, as its sealed record keeps it. */
export function outputText(r: SessionRecord): string | undefined {
  const o = r.output;
  if (o === undefined) return undefined;
  if (o.missing !== undefined && o.files === 0) return `none: ${o.missing}`;
  const notes = [
    o.truncated ? 'cut at its bound' : '',
    o.damaged !== undefined ? `damaged: ${o.damaged}` : '',
    // Not only links and special files: names a terminal would act on, paths too deep or too long.
    o.skipped > 0
      ? `${o.skipped} left out: symbolic links, special files, names or paths it does not keep`
      : '',
  ]
    .filter(Boolean)
    .join(', ');
  return `${o.files} file(s), ${o.bytes} bytes${notes === '' ? '' : ` (${notes})`}`;
}
