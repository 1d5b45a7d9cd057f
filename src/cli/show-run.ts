import { formatDuration } from '../duration.js';
import type { SessionRecord } from '../sessions/records.js';
import { type ClientIo, connectDaemon, failOnReply, printJson } from './client-io.js';
import { EXIT } from './exit-codes.js';
import { outcomeText } from './format.js';
import { shownOn } from './terminal.js';

export interface ShowOptions {
  socket?: string | undefined;
  sessionId: string;
  json: boolean;
}

/** `agentd show`, free of clipanion: ShowCommand and the quick path (quick.ts) both run it. */
export async function runShow(options: ShowOptions, io: ClientIo): Promise<number> {
  const client = await connectDaemon(options.socket, io, options.json);
  if (typeof client === 'number') return client;
  try {
    const reply = await client.request({ type: 'show', sessionId: options.sessionId });
    if (reply?.type !== 'session') return failOnReply(io, options.json, reply);
    if (options.json) printJson(io, reply.record);
    else io.stdout.write(shownOn(io.stdout, render(reply.record)));
    return EXIT.succeeded;
  } finally {
    client.close();
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
