import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { Command, Option, UsageError } from 'clipanion';
import { PROTOCOL_VERSION } from '../constants.js';
import { errorMessage } from '../errors.js';
import { REPEATED_KEY_RULE, readJson } from '../protocol/json-keys.js';
import type { InjectedEvent } from '../protocol/messages.js';
import { describeProblems, MAX_PROBLEMS } from '../protocol/problems.js';
import { isClientSideError, type Reply } from './client.js';
import { ClientCommand } from './client-command.js';
import { EXIT } from './exit-codes.js';
import { jsonText, quietOnBrokenPipe } from './terminal.js';

export class SendCommand extends ClientCommand {
  static override paths = [['send']];
  static override usage = Command.Usage({
    description: 'Send events to the daemon machine (scripted event injection)',
    details: `
      Events are JSON objects of the daemon machine's event schema, one per line (NDJSON):
      \`{"type":"trigger","agent":"demo"}\`, \`{"type":"cancel","sessionId":"..."}\`, \`{"type":"shutdown"}\`.
      They come from the argument, from --file, or from standard input (64 MiB at most). Each is validated like a socket
      request; an invalid one is rejected with the reason and changes nothing. Each reply is printed as one JSON line,
      as the daemon sent it, with a \`line\` field (the event's line number) added; a line that is not JSON gets an
      error of the same shape (code bad_json). Exits 1 when any event was rejected; a reply that is none
      (bad_reply), none within 120 s (no_answer) or a connection the daemon closed (connection_lost: a scripted
      shutdown, once the daemon has stopped) stops it, with exit 4; the event's line and how many were not
      sent are said.
    `,
    examples: [
      ['Trigger a session', `$0 send '{"type":"trigger","agent":"demo"}'`],
      ['Play a script', '$0 send --file examples/events/burst.ndjson'],
      ['From standard input', 'cat events.ndjson | $0 send'],
    ],
  });

  event = Option.String({ name: 'event-json', required: false });
  file = Option.String('--file,-f', { description: 'NDJSON file of events' });

  async execute(): Promise<number> {
    if (this.event !== undefined && this.file !== undefined) {
      throw new UsageError('give either an event argument or --file, not both');
    }
    let text: string;
    try {
      text =
        this.event ??
        (this.file !== undefined ? readEventFile(this.file) : await readStdin(this.context.stdin));
    } catch (error) {
      return this.fail(sourceProblem(this.file, error), EXIT.usage);
    }
    const lines = text.split('\n').map((line, index) => ({ line: line.trim(), number: index + 1 }));
    const events = lines.filter(({ line }) => line !== '' && !line.startsWith('#'));
    if (events.length === 0) return this.fail('no events to send', EXIT.usage);
    const client = await this.connect();
    if (typeof client === 'number') return client;
    let rejected = 0;
    const where = this.file ?? (this.event !== undefined ? 'argument' : 'stdin');
    // A reader that went away (`agentd send -f script | head`) stops the printing, not the events: the
    // exit code still says whether any was rejected.
    const readerGone = quietOnBrokenPipe(this.context.stdout, () => {});
    const print = (reply: object) => {
      if (!readerGone()) this.context.stdout.write(`${jsonText(reply)}\n`);
    };
    try {
      for (const [index, { line, number }] of events.entries()) {
        const read = readEvent(line, where, number);
        if ('error' in read) {
          rejected++;
          print({ line: number, ...read.error });
          continue;
        }
        const { event } = read;
        // Sent as written: the daemon validates it and says what is wrong, field by field.
        const reply = await client.request({
          type: 'event',
          id: String(number),
          event: event as InjectedEvent,
        });
        if (reply === undefined) {
          // A script's own shutdown ends the daemon under it: say which events it never answered.
          const unsent = events.length - index - 1;
          const message = `${where}:${number}: lost the connection to the daemon (it stopped or restarted) before it answered this event, which it may or may not have taken${unsent > 0 ? `; the ${unsent} event(s) after it were not sent` : ''}`;
          print({ line: number, type: 'error', code: 'connection_lost', message });
          return this.fail(message, EXIT.infrastructure);
        }
        // No answer, or a line that is no reply: the events after this one are not sent either.
        if (isClientSideError(reply)) {
          print({ line: number, ...reply });
          return this.fail(`${where}:${number}: ${reply.message}`, EXIT.infrastructure);
        }
        if (reply.type === 'error' || hasRejection(reply)) rejected++;
        print({ line: number, ...reply });
      }
    } finally {
      client.close();
    }
    return rejected > 0 ? EXIT.failed : EXIT.succeeded;
  }
}

function hasRejection(reply: Reply): boolean {
  return reply.type === 'event.result' && reply.answers.some((a) => a.type.endsWith('.rejected'));
}

/**
 * The most of events `send` reads from --file or stdin: it holds them all before sending the first, and
 * `--file /dev/zero` (or a huge file) grew it without end (10 GB in a minute). Room for four requests of
 * the longest line the socket takes.
 */
export const MAX_EVENTS_BYTES = 64 * 1024 * 1024;

/** A read of more than MAX_EVENTS_BYTES, stopped there. */
class TooManyEvents extends Error {}

/** Why the events could not be read, naming where they were to come from and the fix. */
export function sourceProblem(file: string | undefined, error: unknown): string {
  if (error instanceof TooManyEvents) {
    return `${file === undefined ? 'stdin' : `--file ${file}`} holds more than ${MAX_EVENTS_BYTES / (1024 * 1024)} MiB of events, the most send reads at once; split the script into several sends`;
  }
  const code = (error as NodeJS.ErrnoException).code;
  if (file === undefined) return `cannot read the events from stdin (${code ?? errorMessage(error)})`;
  if (code === 'ENOENT') return `--file ${file} does not exist; give the path of an NDJSON file of events`;
  if (code === 'EISDIR') return `--file ${file} is a directory; give the path of an NDJSON file of events`;
  return `--file ${file}: cannot read it (${code ?? errorMessage(error)}); check its owner and mode`;
}

/** The file's events, at most MAX_EVENTS_BYTES; a FIFO is read as it comes (`--file <(make-events)`). */
export function readEventFile(file: string, limit = MAX_EVENTS_BYTES): string {
  const fd = openSync(file, 'r');
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    if (stat.isFile() && stat.size > limit) throw new TooManyEvents();
    const chunks: Buffer[] = [];
    let size = 0;
    for (;;) {
      const chunk = Buffer.alloc(64 * 1024);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      size += n;
      if (size > limit) throw new TooManyEvents();
      chunks.push(chunk.subarray(0, n));
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

async function readStdin(stdin: NodeJS.ReadableStream, limit = MAX_EVENTS_BYTES): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const bytes = Buffer.from(chunk as Buffer);
    size += bytes.byteLength;
    // Leaving the loop stops the reading.
    if (size > limit) throw new TooManyEvents();
    chunks.push(bytes);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * One event line of a script: the event, or the error it gets in the shape of the daemon's own, so a
 * script reads one kind of error. A key given twice (`{"type":"cancel","sessionId":"a","sessionId":"b"}`)
 * is refused here as the daemon refuses it: JSON.parse kept the last value, and the event sent would have
 * been another than the line the operator reads.
 */
export function readEvent(
  line: string,
  where: string,
  number: number,
): { event: unknown } | { error: Record<string, unknown> } {
  const error = (code: string, message: string, problems: { path: string; message: string }[]) => ({
    error: {
      v: PROTOCOL_VERSION,
      id: String(number),
      type: 'error',
      code,
      message,
      problems,
      retryable: false,
    },
  });
  // The operator's own file: no bound on its shape, only the keys counted.
  const read = readJson(line, MAX_PROBLEMS, false);
  if (!('value' in read)) return error('bad_json', `${where}:${number}: not valid JSON`, []);
  if (read.repeated.length === 0) return { event: read.value };
  const problems = read.repeated.map((path) => ({
    path: ['event', ...path].join('.'),
    message: REPEATED_KEY_RULE,
  }));
  return error('bad_request', `${where}:${number}: invalid event: ${describeProblems(problems)}`, problems);
}
