/**
 * The README's reference tables are what an operator reads instead of the code: the `daemon:`, `agents:`,
 * resources and hosts key tables (every key with its default), the HTTP API's operations with their scopes,
 * and the log events. They drifted unseen before (an event renamed in the code, a key added without a row),
 * so each is compared here with what the code has: a key, an operation or an event added, renamed or
 * removed without its row fails this test.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { buildCli } from '../../src/cli/cli.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { DEFAULTS } from '../../src/config/load.js';
import { parseMinFree, parseSize, RESOURCE_DEFAULTS } from '../../src/config/resources.js';
import { allowedKeysAt, configSchema, KEYS } from '../../src/config/schema.js';
import { parseAge, parseDuration } from '../../src/duration.js';
import { OPERATIONS } from '../../src/http/operations.js';
import { readmeSection } from '../helpers/readme.js';

const ROOT = join(import.meta.dirname, '..', '..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The rows of the first table after `heading` (a line of the README) whose header starts with `| key |`. */
function keyTable(heading: string): Map<string, string[]> {
  const start = README.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`README.md has no heading ${heading}`);
  const rest = README.slice(start).split('\n');
  const header = rest.findIndex((line) => line.startsWith('| key |'));
  const rows = new Map<string, string[]>();
  for (const line of rest.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line.split(' | ').map((cell) => cell.replace(/^\| /, '').trim());
    const key = /^`([a-z_]+)`$/.exec(cells[0] ?? '')?.[1];
    if (key === undefined) throw new Error(`a row of ${heading} does not start with a key: ${line}`);
    rows.set(key, cells.slice(1));
  }
  return rows;
}

/** The default column's value without its backquotes: `10s` → 10s. */
function defaultOf(rows: Map<string, string[]>, key: string): string {
  const cell = rows.get(key)?.[0] ?? '';
  return /^`([^`]+)`$/.exec(cell)?.[1] ?? cell;
}

describe('README configuration tables', () => {
  const daemon = keyTable('### `daemon:` (optional)');
  const agents = keyTable('### `agents:` (required, at least one)');
  const resources = keyTable('### Resource limits (`resources:`)');
  const hosts = keyTable('## Running a fleet of Podman hosts');

  it('have one row for every key of the schema, and none for a key it does not have', () => {
    expect([...daemon.keys()].sort()).toEqual([...KEYS.daemon].sort());
    expect([...agents.keys()].sort()).toEqual([...KEYS.agent].sort());
    expect([...resources.keys()].sort()).toEqual([...KEYS.resources].sort());
    expect([...hosts.keys()].sort()).toEqual([...KEYS.host].sort());
  });

  it('give the defaults the code applies', () => {
    const durations = {
      stop_grace: DEFAULTS.stopGraceMs,
      podman_timeout: DEFAULTS.podmanTimeoutMs,
      pull_timeout: DEFAULTS.pullTimeoutMs,
      host_probe_interval: DEFAULTS.hostProbeIntervalMs,
      host_probe_timeout: DEFAULTS.hostProbeTimeoutMs,
      host_down_grace: DEFAULTS.hostDownGraceMs,
    };
    for (const [key, ms] of Object.entries(durations))
      expect([key, parseDuration(defaultOf(daemon, key))]).toEqual([key, ms]);
    expect(Number(defaultOf(daemon, 'max_sessions'))).toBe(DEFAULTS.maxSessions);
    expect(Number(defaultOf(daemon, 'log_max_bytes'))).toBe(DEFAULTS.logMaxBytes);
    expect(Number(defaultOf(daemon, 'history'))).toBe(DEFAULTS.historyLimit);
    expect(Number(defaultOf(daemon, 'records_max_count'))).toBe(DEFAULTS.recordsMaxCount);
    expect(parseAge(defaultOf(daemon, 'records_max_age'))).toBe(parseAge(DEFAULTS.recordsMaxAge));
    expect(parseSize(defaultOf(daemon, 'records_max_size'))?.bytes).toBe(DEFAULTS.recordsMaxBytes);
    expect(parseMinFree(defaultOf(daemon, 'records_min_free'))).toEqual(
      parseMinFree(DEFAULTS.recordsMinFree),
    );
    expect(defaultOf(agents, 'network')).toBe(DEFAULTS.network);
    expect(Number(defaultOf(hosts, 'max_sessions'))).toBe(DEFAULTS.hostMaxSessions);
    for (const [key, value] of Object.entries(RESOURCE_DEFAULTS)) {
      expect([key, defaultOf(resources, key)]).toEqual([key, String(value)]);
    }
  });
});

// biome-ignore lint/suspicious/noExplicitAny: zod's internal definitions are read to reach a key's schema.
type Def = any;
/** The schema of a key, at `path` in the configuration: names of mappings, and `[]` for a list's entries. */
function schemaAt(path: string[]): z.ZodType {
  let schema = configSchema as unknown as z.ZodType;
  for (const step of path) {
    for (;;) {
      const def: Def = (schema as unknown as { _zod: { def: Def } })._zod.def;
      if (['optional', 'nullable', 'default'].includes(def.type)) schema = def.innerType;
      else if (step === '[]' && def.type === 'array') {
        schema = def.element;
        break;
      } else if (def.type === 'object') {
        schema = def.shape[step];
        break;
      } else throw new Error(`no ${step} in ${path.join('.')}`);
    }
  }
  return schema;
}

/** The least value a key takes, as its "too small" problem says it (`use 32 or more`, `the least is 1m`). */
function leastOf(schema: z.ZodType): string | undefined {
  for (const value of [-1, 1]) {
    const result = schema.safeParse(value);
    const message = result.success ? '' : (result.error.issues[0]?.message ?? '');
    const least = /use ([\d.]+) or more|the least is ([^\s;,]+)/.exec(message);
    if (least) return least[1] ?? `\`${least[2]}\``;
  }
  return undefined;
}

describe('README configuration tables: the least values', () => {
  const tables: [string, string[]][] = [
    ['### `daemon:` (optional)', ['daemon']],
    ['### `agents:` (required, at least one)', ['agents', '[]']],
    ['### Resource limits (`resources:`)', ['daemon', 'resources']],
    ['## Running a fleet of Podman hosts', ['hosts', '[]']],
  ];

  it('give the least value the configuration takes for every key that has one', () => {
    const unsaid: string[] = [];
    for (const [heading, path] of tables) {
      for (const [key, cells] of keyTable(heading)) {
        // memory_swap's least is `memory`, which its row says.
        if (key === 'memory_swap') continue;
        const least = leastOf(schemaAt([...path, key]));
        if (least === undefined) continue;
        const meaning = cells.slice(1).join(' | ');
        if (!meaning.includes(`≥ ${least}`) && !meaning.includes(`${least} to `))
          unsaid.push(`${key}: ${least}`);
      }
    }
    expect(unsaid).toEqual([]);
  });
});

describe('README validate examples', () => {
  it('list the allowed keys an unknown key is told of as the configuration has them', () => {
    const examples = [
      ...README.matchAll(/^ +(\S+) \(line \d+, col \d+\): unknown key "[^"]+"; allowed keys are ([^;]+);/gm),
    ];
    expect(examples.length).toBeGreaterThan(0);
    for (const [, path = '', keys] of examples) {
      const parent = path
        .split(/\.|\[(\d+)\]/)
        .filter((step) => step !== undefined && step !== '')
        .slice(0, -1)
        .map((step) => (/^\d+$/.test(step) ? Number(step) : step));
      expect([path, keys]).toEqual([path, allowedKeysAt(parent).join(', ')]);
    }
  });
});

describe('README configuration keys without a table of their own', () => {
  it('names every key of schedules, notifications, the HTTP API, mounts and credentials', () => {
    const keys = [
      KEYS.top,
      KEYS.schedule,
      KEYS.notify,
      KEYS.http,
      KEYS.token,
      KEYS.tls,
      KEYS.mount,
      KEYS.credential,
    ];
    const unnamed = keys
      .flat()
      .filter((key) => !README.includes(`\`${key}\``) && !README.includes(`${key}:`));
    expect(unnamed).toEqual([]);
  });
});

describe('README commands', () => {
  it('names every command, and each option in a paragraph, row or item about its command', async () => {
    const cli = await buildCli(undefined);
    // Paragraphs, table rows and list items.
    const pieces = README.split(/\n\s*\n|\n(?=\| )|\n(?=- )/);
    const unnamed: string[] = [];
    for (const definition of cli.definitions()) {
      const command = definition.path.replace(/^agentd ?/, '');
      if (command === '' || command === 'help') continue;
      if (!README.includes(`agentd ${command}`)) unnamed.push(command);
      const about = pieces.filter(
        (piece) =>
          piece.includes(`agentd ${command}`) ||
          piece.includes(`\`${command}`) ||
          piece.includes(`${command} --`),
      );
      for (const option of definition.options) {
        const names = option.definition.split(/[ ,]/).filter((name) => name.startsWith('-'));
        // --socket is every client's, said once for all of them.
        if (names.includes('--socket')) continue;
        if (!about.some((piece) => names.some((name) => new RegExp(`${name}\\b`).test(piece)))) {
          unnamed.push(`${command} ${names.join(',')}`);
        }
      }
    }
    expect(unnamed).toEqual([]);
  });
});

describe('README exit codes', () => {
  it('has a row for every exit code of the CLI, and none it does not use', () => {
    const { text } = readmeSection(/^## Outcomes and exit codes$/);
    const table = text.slice(0, text.indexOf('### Outcome kinds'));
    const rows = [...table.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1]));
    const byNumber = (a: number, b: number) => a - b;
    expect(rows.sort(byNumber)).toEqual([...new Set(Object.values(EXIT))].sort(byNumber));
  });
});

describe('README HTTP API table', () => {
  it('lists every operation with the scope it needs, and none that does not exist', () => {
    const { text } = readmeSection(/^## HTTP API$/);
    const rows = [...text.matchAll(/^\| `(GET|POST) (\/[^`]*)` \| ([a-z]+) \|/gm)].map(
      (m) => `${m[1]} ${m[2]} ${m[3]}`,
    );
    const operations = OPERATIONS.map((op) => `${op.method.toUpperCase()} ${op.path} ${op.scope ?? 'none'}`);
    expect(rows.sort()).toEqual([...operations].sort());
  });

  it("names every query parameter and body field of each operation in the operation's row", () => {
    const { text } = readmeSection(/^## HTTP API$/);
    const unnamed: string[] = [];
    for (const op of OPERATIONS) {
      const row =
        text.split('\n').find((line) => line.startsWith(`| \`${op.method.toUpperCase()} ${op.path}\` |`)) ??
        '';
      const shapeOf = (schema: unknown) =>
        Object.keys((schema as { shape?: object } | undefined)?.shape ?? {});
      for (const name of shapeOf(op.query))
        if (!row.includes(`${name}=`)) unnamed.push(`${op.path} ?${name}=`);
      for (const name of shapeOf(op.body))
        if (!row.includes(`"${name}"`)) unnamed.push(`${op.path} "${name}"`);
    }
    expect(unnamed).toEqual([]);
  });
});

describe('README HTTP API errors', () => {
  it('names every error code the API answers with, and its status', () => {
    const { text } = readmeSection(/^## HTTP API$/);
    const api = readFileSync(join(ROOT, 'src', 'http', 'api.ts'), 'utf8');
    const answered = [...api.matchAll(/errorResponse\(\s*c,\s*(\d+),\s*'([a-z_]+)'/g)].map((m) => [
      m[2],
      m[1],
    ]);
    expect(answered.length).toBeGreaterThan(10);
    const unsaid = answered.filter(
      ([code, status]) =>
        !new RegExp(`\`${code}\`[^;]{0,80}?\\b${status}\\b|\\b${status} \\(\`${code}\``).test(text),
    );
    expect(unsaid).toEqual([]);
  });
});

/** Every `event: 'x.y'` a module of src/ logs. */
function emittedEvents(): Set<string> {
  const src = join(ROOT, 'src');
  const events = new Set<string>();
  for (const file of readdirSync(src, { recursive: true, encoding: 'utf8' })) {
    if (!file.endsWith('.ts')) continue;
    const code = readFileSync(join(src, file), 'utf8');
    for (const m of code.matchAll(/\bevent: ['"]([a-z_]+\.[a-z_]+)['"]/g)) events.add(m[1] as string);
  }
  return events;
}

/** Events only ever logged at `debug`, which the table leaves out. */
const DEBUG_ONLY = ['http.aborted'];

describe('README log table', () => {
  const { text } = readmeSection(/^## Logs$/);
  const table = text.split('\n').filter((line) => line.startsWith('| ') && !line.startsWith('| event |'));
  const named = (cell: string) => [...cell.matchAll(/`([a-z_]+\.[a-z_]+)`/g)].map((m) => m[1] as string);
  /** Text outside parentheses: the `warnings` row's notes name record fields (`output.missing`), not events. */
  const outsideParentheses = (cell: string) => {
    let depth = 0;
    let kept = '';
    for (const c of cell) {
      if (c === '(') depth += 1;
      else if (c === ')') depth -= 1;
      else if (depth === 0) kept += c;
    }
    return kept;
  };
  /** The events a row is about: its first column, or the second of the `errors` and `warnings` rows. */
  const listed = new Set(
    table.flatMap((line) => {
      const [first = '', second = ''] = line.slice(2).split(' | ');
      return first === 'errors' || first === 'warnings' ? named(outsideParentheses(second)) : named(first);
    }),
  );
  /** Any event the section names, also in another's row (`session.teardown_warning` under `session.teardown_retry`). */
  const mentioned = new Set(named(text));
  const emitted = emittedEvents();

  it('names every event the daemon logs', () => {
    const missing = [...emitted].filter((event) => !mentioned.has(event) && !DEBUG_ONLY.includes(event));
    expect(missing).toEqual([]);
  });

  it('lists no event the daemon no longer logs', () => {
    expect(emitted.size).toBeGreaterThan(50);
    expect([...listed].filter((event) => !emitted.has(event))).toEqual([]);
  });
});
