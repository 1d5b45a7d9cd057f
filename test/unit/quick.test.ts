/**
 * The quick path (src/cli/quick.ts) runs plain `status`, `trigger`, `history`, `wait`, `show`, `cancel`
 * and `logs` without loading clipanion. Its
 * table is written by hand, so this test derives the same table from the clipanion commands and parses
 * every documented command line, and many that are not, both ways: where the quick path takes a line,
 * clipanion must take it too and set every field alike; where clipanion refuses one, the quick path
 * must leave it to clipanion.
 */
import type { Cli, Command } from 'clipanion';
import { describe, expect, it } from 'vitest';
import { buildCli } from '../../src/cli/cli.js';
import { LEFT_TO_CLIPANION, parseQuick, QUICK_SPECS, type QuickSpec } from '../../src/cli/quick.js';

const COMMANDS = Object.keys(QUICK_SPECS);
/** A value each option takes (its validator refuses others); `10m` for the rest. */
const GOOD_VALUES: Record<string, string> = {
  '--exit-code': 'command',
  '--outcome': 'failed',
  '--limit': '20',
  '--log-format': 'pretty',
  '--log-level': 'debug',
  '--after': '1200',
};
const NOT_FIELDS = new Set(['context', 'cli', 'help', 'path']);

function fields(command: Command): Record<string, unknown> {
  return Object.fromEntries(Object.entries(command).filter(([key]) => !NOT_FIELDS.has(key)));
}

function parse(cli: Cli, argv: string[]): Record<string, unknown> | undefined {
  try {
    const command = cli.process(argv);
    return command.help ? undefined : fields(command);
  } catch {
    return undefined;
  }
}

function definitionOf(cli: Cli, name: string) {
  const definition = cli.definitions().find((d) => d.path === `agentd ${name}`);
  if (!definition) throw new Error(`no clipanion command ${name}`);
  return definition;
}

/** The quick table as the clipanion definition implies it. */
function derivedSpec(cli: Cli, name: string): QuickSpec {
  const definition = definitionOf(cli, name);
  const positionalTokens = definition.usage.split(' ').filter((t) => /^[<[][a-z-]+[>\]]$/.test(t));
  const required = positionalTokens.filter((t) => t.startsWith('<')).length;
  // A session id must look like one (its validator refuses others): 16 hex digits, told apart by the last.
  const values = positionalTokens.map((token, i) =>
    token === '<session-id>' ? `${'0'.repeat(15)}${i}` : `POSITIONAL${i}`,
  );
  const all = parse(cli, [name, ...values]);
  if (!all) throw new Error(`${name} does not take ${positionalTokens.length} positionals`);
  const positionals = values.map((v) => Object.keys(all).find((key) => all[key] === v) as string);
  const baseline = parse(cli, [name, ...values.slice(0, required)]) ?? {};
  const spec: QuickSpec = { flags: {}, options: {}, positionals, required };
  for (const option of definition.options) {
    const tokens = option.definition.split(' ')[0]?.split(',') ?? [];
    if (tokens.some((t) => LEFT_TO_CLIPANION[name]?.includes(t))) continue;
    const takesValue = option.definition.includes('#0');
    for (const token of option.definition.split(' ')[0]?.split(',') ?? []) {
      const probe = takesValue ? [token, GOOD_VALUES[token] ?? '10m'] : [token];
      const parsed = parse(cli, [name, ...values.slice(0, required), ...probe]);
      if (!parsed) throw new Error(`clipanion refuses ${name} ${probe.join(' ')}`);
      const field = Object.keys(parsed).find((key) => parsed[key] !== baseline[key]) as string;
      (takesValue ? spec.options : spec.flags)[token] = field;
    }
  }
  return spec;
}

/** Command lines worth comparing: the documented ones, and forms around each option. */
function commandLines(cli: Cli, name: string): string[][] {
  const definition = definitionOf(cli, name);
  const documented = (definition.examples ?? []).map(
    ([, line]) =>
      line
        .replace(/^agentd /, '')
        .split(' | ')[0]
        ?.split(' ') ?? [],
  );
  const spec = QUICK_SPECS[name] as QuickSpec;
  const tokens = [
    ...Object.keys(spec.flags),
    ...Object.keys(spec.options).flatMap((o) => [
      `${o} ${GOOD_VALUES[o] ?? '10m'}`,
      `${o} banana`,
      `${o}=10m`,
      `${o} has space`,
      o,
    ]),
    'demo',
    '3f9c2a71b0d4e812',
    'git://h/r.git',
    'third',
    '--bogus',
    '-qd',
    '--help',
    '--',
  ];
  const generated: string[][] = [[name]];
  for (const a of tokens) {
    generated.push([name, ...a.split(' ')]);
    for (const b of tokens) generated.push([name, ...a.split(' '), ...b.split(' ')]);
  }
  return [...documented, ...generated];
}

describe.each(COMMANDS)('the quick path of %s', (name) => {
  it('has the table its clipanion command implies', async () => {
    const cli = await buildCli(name);
    expect(QUICK_SPECS[name]).toEqual(derivedSpec(cli, name));
  });

  it('runs every documented command line', async () => {
    const cli = await buildCli(name);
    for (const [, line] of definitionOf(cli, name).examples ?? []) {
      const argv =
        line
          .replace(/^agentd /, '')
          .split(' | ')[0]
          ?.split(' ') ?? [];
      const slow = argv.some((token) =>
        LEFT_TO_CLIPANION[name]?.some((option) => token === option || token.startsWith(`${option}=`)),
      );
      expect(parseQuick(argv) === undefined, line).toBe(slow);
    }
  });

  it('parses every command line as clipanion does, or leaves it to clipanion', async () => {
    const cli = await buildCli(name);
    let quick = 0;
    for (const argv of commandLines(cli, name)) {
      const mine = parseQuick(argv);
      const theirs = parse(cli, argv);
      if (theirs === undefined) {
        expect(mine, `clipanion refuses \`${argv.join(' ')}\``).toBeUndefined();
        continue;
      }
      if (mine === undefined) continue;
      quick++;
      const expected = Object.fromEntries(
        Object.entries(theirs).map(([key, value]) => [key, value === false ? undefined : value]),
      );
      const got = Object.fromEntries(Object.keys(theirs).map((key) => [key, mine.values[key]]));
      expect(got, argv.join(' ')).toEqual(expected);
    }
    // show and cancel have two options: fewer forms to take.
    expect(quick, 'command lines the quick path took').toBeGreaterThan(5);
  });
});

describe('parseQuick', () => {
  it('parses the plain forms of status and trigger', () => {
    expect(parseQuick(['status'])).toEqual({ command: 'status', values: {} });
    expect(
      parseQuick(['trigger', '-q', 'demo', 'git://h/r.git', '--work-unit', 'W-1', '--timeout', '10m', '-d']),
    ).toEqual({
      command: 'trigger',
      values: {
        quiet: true,
        agent: 'demo',
        repo: 'git://h/r.git',
        workUnit: 'W-1',
        timeout: '10m',
        detach: true,
      },
    });
  });

  it('leaves everything else to clipanion', () => {
    for (const argv of [
      [],
      ['start', '--inspect'],
      ['start', '--log-level', 'loud'],
      ['logs', '0123456789abcdef', '--after', '-1'],
      ['logs', '0123456789abcdef', '--after', '01'],
      ['wait', '0123456789ABCDEF'],
      ['wait', '0123456789abcdef', '--timeout', 'soon'],
      ['show'],
      ['cancel', '0123456789abcdef', 'more'],
      ['toString'],
      ['status', 'constructor'],
      ['status', '--socket', '--json'],
      ['trigger', 'demo', '--timeout', '0s'],
      ['trigger', 'demo', '--exit-code', 'banana'],
      ['trigger', 'demo', '--key', ''],
    ]) {
      expect(parseQuick(argv), argv.join(' ')).toBeUndefined();
    }
  });
});
