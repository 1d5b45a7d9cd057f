import type { LogFormat } from '../adapters/logger.js';
import { IDEMPOTENCY_KEY_PATTERN, SESSION_ID_PATTERN } from '../constants.js';
import { durationProblem } from '../duration.js';
import { HISTORY_MAX_LIMIT, parseSince } from '../sessions/history.js';
import { OUTCOMES, type Outcome } from '../sessions/types.js';
import { workUnitProblem } from '../work-unit.js';
import type { ClientIo } from './client-io.js';
import { EXIT, EXIT_CODE_MODES, type ExitCodeMode } from './exit-codes.js';
import { LOG_FORMATS, LOG_LEVELS, type LogLevel } from './log-options.js';
import { SEQUENCE_NUMBER_PATTERN } from './sequence-number.js';

/**
 * The quick path: `status`, `history`, `trigger`, `wait`, `show`, `cancel` and `logs` given only the plain forms below run without clipanion, whose
 * loading is about a third of these commands' start-up (scripts and hooks call them often); so does
 * `start`, whose daemon would hold clipanion for its whole life. Anything
 * else (help, an unknown, repeated or `--opt=value` option, a value or positional starting with `-`,
 * missing arguments, a value its option's validator refuses) returns undefined and clipanion parses
 * it, errors included. The table mirrors their clipanion commands field for field:
 * test/unit/quick.test.ts derives it from their clipanion definitions and parses every documented
 * command line both ways.
 */
export interface QuickSpec {
  /** Boolean flags: token → field. */
  flags: Record<string, string>;
  /** Options taking the next token as their value: token → field. */
  options: Record<string, string>;
  /** Positional fields, in order; the first `required` must be given. */
  positionals: string[];
  required: number;
}

/**
 * Options the quick path leaves to clipanion: a command line with one is not a plain form. Their values
 * are files to read (the request, input files), which costs more than loading clipanion.
 */
export const LEFT_TO_CLIPANION: Record<string, readonly string[]> = {
  trigger: ['--request', '--request-file', '--input'],
  // A development aid, with a value of its own form (--inspect, --inspect=PORT).
  start: ['--inspect'],
};

export const QUICK_SPECS: Record<string, QuickSpec> = {
  // The daemon: without clipanion and the other commands it holds about 2 MB less for its whole life.
  start: {
    flags: {},
    options: { '--config': 'config', '-c': 'config', '--log-format': 'logFormat', '--log-level': 'logLevel' },
    positionals: [],
    required: 0,
  },
  status: { flags: { '--json': 'json' }, options: { '--socket': 'socket' }, positionals: [], required: 0 },
  history: {
    flags: { '--json': 'json' },
    options: {
      '--socket': 'socket',
      '--agent': 'agent',
      '--outcome': 'outcome',
      '--work-unit': 'workUnit',
      '--since': 'since',
      '--limit': 'limit',
    },
    positionals: [],
    required: 0,
  },
  wait: {
    flags: { '--json': 'json', '--strict': 'strict' },
    options: { '--socket': 'socket', '--timeout': 'timeout', '--exit-code': 'exitCode' },
    positionals: ['sessionId'],
    required: 1,
  },
  show: {
    flags: { '--json': 'json' },
    options: { '--socket': 'socket' },
    positionals: ['sessionId'],
    required: 1,
  },
  cancel: {
    flags: { '--json': 'json' },
    options: { '--socket': 'socket' },
    positionals: ['sessionId'],
    required: 1,
  },
  logs: {
    flags: { '--follow': 'follow', '-f': 'follow', '--json': 'json', '--raw': 'raw' },
    options: { '--socket': 'socket', '--after': 'after' },
    positionals: ['sessionId'],
    required: 1,
  },
  trigger: {
    flags: {
      '--quiet': 'quiet',
      '-q': 'quiet',
      '--json': 'json',
      '--detach': 'detach',
      '-d': 'detach',
      '--strict': 'strict',
      '--raw': 'raw',
    },
    options: {
      '--socket': 'socket',
      '--work-unit': 'workUnit',
      '--timeout': 'timeout',
      '--key': 'key',
      '--exit-code': 'exitCode',
    },
    positionals: ['agent', 'repo'],
    required: 1,
  },
};

/** record[key] for the record's own keys only (never a prototype's). */
function own<T>(record: Record<string, T>, key: string | undefined): T | undefined {
  return key !== undefined && Object.hasOwn(record, key) ? record[key] : undefined;
}

export type QuickCommand = { command: string; values: Record<string, string | boolean> };

/** Parses argv when it is one of the plain forms; undefined otherwise. */
export function parseQuick(argv: readonly string[]): QuickCommand | undefined {
  const [command, ...rest] = argv;
  const spec = own(QUICK_SPECS, command);
  if (command === undefined || !spec) return undefined;
  const values: Record<string, string | boolean> = {};
  let positional = 0;
  for (let i = 0; i < rest.length; i++) {
    const token = rest[i] ?? '';
    const flag = own(spec.flags, token);
    const option = own(spec.options, token);
    const field = flag ?? option ?? (token.startsWith('-') ? undefined : spec.positionals[positional++]);
    if (field === undefined || Object.hasOwn(values, field)) return undefined;
    if (option !== undefined) {
      const value = rest[++i];
      if (value === undefined || value === '' || value.startsWith('-')) return undefined;
      values[field] = value;
    } else {
      values[field] = flag === undefined ? token : true;
    }
  }
  if (positional < spec.required) return undefined;
  // Refused by the commands' validators and rules: clipanion says why.
  if (typeof values.sessionId === 'string' && !SESSION_ID_PATTERN.test(values.sessionId)) return undefined;
  if (typeof values.after === 'string' && !SEQUENCE_NUMBER_PATTERN.test(values.after)) return undefined;
  if (typeof values.timeout === 'string' && durationProblem(values.timeout) !== undefined) return undefined;
  if (typeof values.key === 'string' && !IDEMPOTENCY_KEY_PATTERN.test(values.key)) return undefined;
  if (typeof values.workUnit === 'string' && workUnitProblem(values.workUnit) !== undefined) return undefined;
  if (
    typeof values.exitCode === 'string' &&
    !(EXIT_CODE_MODES as readonly string[]).includes(values.exitCode)
  )
    return undefined;
  if (typeof values.outcome === 'string' && !(OUTCOMES as readonly string[]).includes(values.outcome))
    return undefined;
  if (typeof values.logFormat === 'string' && !(LOG_FORMATS as readonly string[]).includes(values.logFormat))
    return undefined;
  if (typeof values.logLevel === 'string' && !(LOG_LEVELS as readonly string[]).includes(values.logLevel))
    return undefined;
  if (typeof values.since === 'string' && parseSince(values.since, 0) === undefined) return undefined;
  if (
    typeof values.limit === 'string' &&
    !(/^\d+$/.test(values.limit) && Number(values.limit) >= 1 && Number(values.limit) <= HISTORY_MAX_LIMIT)
  )
    return undefined;
  return { command, values };
}

/** Runs a plain-form `start` or client command (QUICK_SPECS); undefined when clipanion must handle argv. */
export async function runQuick(argv: readonly string[], io: ClientIo): Promise<number | undefined> {
  const quick = parseQuick(argv);
  if (!quick) return undefined;
  try {
    return await runParsed(quick, io);
  } catch (error) {
    // As AgentdCommand on the clipanion path: with --json one object on stdout too (README: every
    // failing command prints one); without it the entry reports the error (its stack with AGENTD_DEBUG).
    if (quick.values.json !== true) throw error;
    if (process.env.AGENTD_DEBUG && error instanceof Error) io.stderr.write(`${error.stack}\n`);
    const { failWith } = await import('./client-io.js');
    const message = `unexpected error: ${error instanceof Error ? error.message : String(error)}`;
    return failWith(io, true, { error: 'unexpected', message }, EXIT.infrastructure);
  }
}

async function runParsed(quick: QuickCommand, io: ClientIo): Promise<number> {
  const { values } = quick;
  const text = (field: string) => values[field] as string | undefined;
  const flag = (field: string) => values[field] === true;
  if (quick.command === 'start') {
    const { runStart } = await import('./start-run.js');
    return runStart(
      {
        config: text('config'),
        logFormat: text('logFormat') as LogFormat | undefined,
        logLevel: text('logLevel') as LogLevel | undefined,
      },
      io.stderr,
    );
  }
  if (quick.command === 'status') {
    const { runStatus } = await import('./status-run.js');
    return runStatus({ socket: text('socket'), json: flag('json') }, io);
  }
  if (quick.command === 'history') {
    const { runHistory } = await import('./history-run.js');
    return runHistory(
      {
        socket: text('socket'),
        json: flag('json'),
        agent: text('agent'),
        outcome: text('outcome') as Outcome | undefined,
        workUnit: text('workUnit'),
        since: text('since'),
        limit: text('limit'),
      },
      io,
    );
  }
  if (quick.command === 'wait') {
    const { runWait } = await import('./wait-run.js');
    return runWait(
      {
        socket: text('socket'),
        sessionId: text('sessionId') ?? '',
        timeout: text('timeout'),
        json: flag('json'),
        exitCode: (text('exitCode') as ExitCodeMode | undefined) ?? 'outcome',
        strict: flag('strict'),
      },
      io,
    );
  }
  if (quick.command === 'show' || quick.command === 'cancel') {
    const options = { socket: text('socket'), sessionId: text('sessionId') ?? '', json: flag('json') };
    if (quick.command === 'show') return (await import('./show-run.js')).runShow(options, io);
    return (await import('./cancel-run.js')).runCancel(options, io);
  }
  if (quick.command === 'logs') {
    const { runLogs } = await import('./logs-run.js');
    return runLogs(
      {
        socket: text('socket'),
        sessionId: text('sessionId') ?? '',
        follow: flag('follow'),
        json: flag('json'),
        raw: flag('raw'),
        after: text('after'),
      },
      io,
    );
  }
  const { runTrigger } = await import('./trigger-run.js');
  return runTrigger(
    {
      agent: text('agent') ?? '',
      repo: text('repo'),
      workUnit: text('workUnit'),
      timeout: text('timeout'),
      socket: text('socket'),
      quiet: flag('quiet'),
      json: flag('json'),
      detach: flag('detach'),
      key: text('key'),
      exitCode: (text('exitCode') as ExitCodeMode | undefined) ?? 'outcome',
      strict: flag('strict'),
      raw: flag('raw'),
    },
    io,
  );
}
