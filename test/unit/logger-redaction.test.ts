/**
 * The daemon's logger (createLogger, as `agentd start` creates it) redacts every field its REDACT paths
 * name and shows a SecretValue as "[redacted]", at every level and in both formats: a credential value
 * logged in any of those places never reaches the log in clear. The lines are captured where the logger
 * writes them: pino.destination (JSON) and writeSync on fd 2 (pretty).
 */
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, type LogFormat, type Logger } from '../../src/adapters/logger.js';
import { SecretValue } from '../../src/secret-value.js';

const captured: string[] = [];

vi.mock('node:fs', async (original) => {
  const real = await original<typeof import('node:fs')>();
  const writeSync = ((fd: number, data: unknown, ...rest: unknown[]) => {
    if (fd === 2) {
      captured.push(String(data));
      return Buffer.byteLength(String(data));
    }
    return (real.writeSync as (...args: unknown[]) => number)(fd, data, ...rest);
  }) as typeof real.writeSync;
  return { ...real, default: { ...real, writeSync }, writeSync };
});

afterEach(() => {
  captured.length = 0;
  vi.restoreAllMocks();
});

const VALUE = 'leak-probe-Zq7xW3kP9v';
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

/** Each place a credential value is meant to be hidden in: the REDACT paths, and a SecretValue anywhere. */
function carriers(): [string, (log: Logger, level: (typeof LEVELS)[number]) => void][] {
  const secret = () => new SecretValue(VALUE);
  const fields: [string, Record<string, unknown>][] = [
    ['value', { value: VALUE }],
    ['*.value', { credential: { name: 'TOKEN', value: VALUE } }],
    ['token', { token: VALUE }],
    ['*.token', { auth: { token: VALUE } }],
    ['repoToken', { repoToken: VALUE }],
    ['*.repoToken', { agent: { repoToken: VALUE } }],
    [
      'credentials[*].value',
      {
        credentials: [
          { name: 'A', value: 'other-value' },
          { name: 'B', value: VALUE },
        ],
      },
    ],
    ['secret', { secret: VALUE }],
    ['a SecretValue field', { resolved: secret() }],
    ['a nested SecretValue', { session: { env: { TOKEN: secret() } } }],
    ['SecretValues in an array', { values: [secret(), secret()] }],
    ['a SecretValue as value', { value: secret() }],
  ];
  return [
    ...fields.map(
      ([name, object]) =>
        [name, (log: Logger, level: (typeof LEVELS)[number]) => log[level](object, 'logged')] as [
          string,
          (log: Logger, level: (typeof LEVELS)[number]) => void,
        ],
    ),
    ['a SecretValue as %s', (log, level) => log[level]('resolved %s', secret())],
    ['a SecretValue as %o', (log, level) => log[level]('resolved %o', { v: secret() })],
    ['a SecretValue as %j', (log, level) => log[level]('resolved %j', { v: secret() })],
    [
      'a SecretValue in a child logger',
      (log, level) => log.child({ held: secret(), token: VALUE })[level]('logged'),
    ],
  ];
}

async function capture(format: LogFormat): Promise<Logger> {
  if (format === 'json')
    vi.spyOn(pino, 'destination').mockReturnValue({
      write: (line: string) => captured.push(line),
      flush: () => {},
    } as unknown as ReturnType<typeof pino.destination>);
  return createLogger(format, 'trace');
}

describe.each(['json', 'pretty'] as const)("the daemon's logger (%s)", (format) => {
  it.each(carriers())('never shows a credential value held in %s, at any level', async (_name, logIt) => {
    const log = await capture(format);
    for (const level of LEVELS) logIt(log, level);
    const out = captured.join('');
    // Every level wrote its line, where the logger writes (or the test would see nothing to leak).
    expect(out.match(/logged|resolved/g)?.length ?? 0).toBeGreaterThanOrEqual(LEVELS.length);
    expect(out).not.toContain(VALUE);
    expect(out).toContain('redacted');
  });
});
