import { writeSync } from 'node:fs';
import { Writable } from 'node:stream';
import pino, { type DestinationStream, type Logger } from 'pino';
import { inertJson, visibleKeepingColours } from '../visible-text.js';

export type LogFormat = 'json' | 'pretty';

/** Field names that may hold credential values: redacted once here, for every logger. */
const REDACT = [
  'value',
  '*.value',
  'token',
  '*.token',
  'repoToken',
  '*.repoToken',
  'credentials[*].value',
  'secret',
];

/**
 * pino JSON lines on stderr, or human-readable lines with --log-format pretty. What the log says can come
 * from an agent or a remote host (an outcome's message, a host's answer), and the log is read on
 * terminals: JSON has what a terminal acts on escaped (src/visible-text.ts), pretty lines have it made
 * visible, their own colours kept.
 */
export async function createLogger(format: LogFormat, level: string): Promise<Logger> {
  const options = { level, base: { pid: process.pid }, redact: { paths: REDACT, censor: '[redacted]' } };
  if (format === 'pretty') {
    // Loaded only when asked for: clients and JSON daemons never pay for it.
    const { default: pretty } = await import('pino-pretty');
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        writeSync(2, visibleKeepingColours(chunk.toString('utf8')));
        done();
      },
    });
    return pino(options, pretty({ destination, sync: true, ignore: 'pid,hostname' }));
  }
  const stderr = pino.destination({ fd: 2, sync: true });
  return pino(options, {
    write: (line: string) => stderr.write(inertJson(line)),
    flush: () => stderr.flush(),
  } as DestinationStream);
}

export type { Logger };
