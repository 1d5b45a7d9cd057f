import pino, { type Logger } from 'pino';

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

/** pino JSON lines on stderr, or human-readable lines with --log-format pretty. */
export async function createLogger(format: LogFormat, level: string): Promise<Logger> {
  const options = { level, base: { pid: process.pid }, redact: { paths: REDACT, censor: '[redacted]' } };
  if (format === 'pretty') {
    // Loaded only when asked for: clients and JSON daemons never pay for it.
    const { default: pretty } = await import('pino-pretty');
    return pino(options, pretty({ destination: 2, sync: true, ignore: 'pid,hostname' }));
  }
  return pino(options, pino.destination({ fd: 2, sync: true }));
}

export type { Logger };
