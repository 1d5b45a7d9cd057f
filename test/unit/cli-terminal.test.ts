/**
 * What a session can put in front of the operator (its output, its record's message, e.g. a hostile git
 * server's `remote:` lines kept from a failed clone) never acts on their terminal: every command shows
 * control and format characters visibly on a terminal, and `--json` escapes those JSON leaves raw.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { buildCli } from '../../src/cli/cli.js';
import { jsonText, visible } from '../../src/cli/terminal.js';
import { inertJson, UNSHOWABLE_NAME, visibleKeepingColours } from '../../src/visible-text.js';
import { fakeDaemon } from '../helpers/fake-daemon.js';

const ID = '0123456789abcdef';
/** OSC 52 (write the clipboard), a title, a C1 CSI (clear the screen), a right-to-left override. */
const HOSTILE = 'remote: \x1b]52;c;cHduZWQ=\x07\x1b]0;title\x07 \u009b2J \u009d52;c;eA==\u009c \u202eevil';
const RECORD = {
  version: 1,
  id: ID,
  agent: 'a',
  repo: 'git://127.0.0.1/x.git',
  acceptedAt: '2026-01-01T00:00:00.000Z',
  phase: 'finished',
  phases: [{ phase: 'queued', at: '2026-01-01T00:00:00.000Z' }],
  outcome: 'failed',
  exitCode: 128,
  message: `git clone of git://127.0.0.1/x.git failed: ${HOSTILE}`,
};
/** What a terminal acts on: ESC, the C1 controls, bidirectional overrides. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: what a terminal acts on is the point.
const ACTS_ON_TERMINAL = /[\u001b\u0080-\u009f\u202a-\u202e\u2066-\u2069]/;

/** A daemon that answers show, wait and logs with the hostile record, and cancel with a hostile error. */
function daemon(): Promise<string> {
  const outcome = { v: 2, type: 'outcome', sessionId: ID, agent: 'a', outcome: 'failed', record: RECORD };
  const output = {
    v: 2,
    type: 'output',
    sessionId: ID,
    line: HOSTILE,
    seq: 1,
    stream: 'stdout',
    time: RECORD.acceptedAt,
  };
  const replies: Record<string, object[]> = {
    hello: [
      {
        v: 2,
        type: 'hello',
        protocol: 2,
        protocols: [1, 2],
        version: 'x',
        pid: 1,
        instanceId: 'i',
        state: 'ready',
      },
    ],
    show: [{ v: 2, type: 'session', sessionId: ID, record: RECORD }],
    trigger: [{ v: 2, type: 'accepted', sessionId: ID, queued: false, position: 0 }, output, outcome],
    wait: [outcome],
    logs: [output, outcome],
  };
  const refusal = {
    v: 2,
    type: 'error',
    code: 'unknown_session',
    message: `no session ${HOSTILE}`,
    problems: [],
    retryable: false,
  };
  return fakeDaemon((type) => replies[type] ?? refusal);
}

/** A stream that says it is a terminal, and what was written to it. */
function terminal(): PassThrough & { isTTY: boolean; text(): string } {
  const stream = Object.assign(new PassThrough(), { isTTY: true, text: (): string => '' });
  const chunks: string[] = [];
  stream.on('data', (chunk) => chunks.push(String(chunk)));
  stream.text = () => chunks.join('');
  return stream;
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = terminal();
  const stderr = terminal();
  const cli = await buildCli(args[0]);
  const code = await cli.run(args, { stdin: process.stdin, stdout, stderr });
  await new Promise((resolve) => setImmediate(resolve));
  return { code, out: stdout.text(), err: stderr.text() };
}

describe('hostile text on the operator terminal', () => {
  it.each([
    ['show', ['show', ID]],
    ['wait', ['wait', ID]],
    ['logs', ['logs', ID]],
    ['a refusal', ['cancel', ID]],
  ])('%s shows it made visible', async (_name, args) => {
    const socket = await daemon();
    const { out, err } = await run([...args, '--socket', socket]);
    expect(out + err).toContain(
      'remote: ^[]52;c;cHduZWQ=^G^[]0;title^G M-^[2J M-^]52;c;eA==M-^\\ <U+202E>evil',
    );
    expect(out + err).not.toMatch(ACTS_ON_TERMINAL);
  });

  it.each([
    ['trigger', ['trigger', 'a', '--raw'], 'out'],
    ['logs', ['logs', ID, '--raw'], 'err'],
  ])('%s --raw writes the output as it is, and its outcome line made visible', async (_name, args, where) => {
    // --raw is for the agent's output (its colours); the outcome line is agentd's, and its message can
    // hold a git server's `remote:` lines.
    const socket = await daemon();
    const { out, err } = await run([...args, '--socket', socket]);
    expect(out).toContain(`${HOSTILE}\n`);
    const outcome = (where === 'out' ? out : err)
      .split('\n')
      .find((line) => line.startsWith(`session ${ID} failed`));
    expect(outcome).toContain('remote: ^[]52;c;cHduZWQ=^G');
    expect(outcome).not.toMatch(ACTS_ON_TERMINAL);
  });

  it.each([
    ['show', ['show', ID, '--json']],
    ['wait', ['wait', ID, '--json']],
    ['logs', ['logs', ID, '--json']],
    ['a refusal', ['cancel', ID, '--json']],
  ])('%s --json escapes it, and parses back to the same text', async (_name, args) => {
    const socket = await daemon();
    const { out } = await run([...args, '--socket', socket]);
    expect(out).not.toMatch(ACTS_ON_TERMINAL);
    expect(out).toContain('\\u009b2J');
    const texts = out
      .trim()
      .split('\n')
      .map((line) => JSON.stringify(JSON.parse(line)));
    expect(texts.some((text) => text.includes(JSON.stringify(HOSTILE).slice(1, -1)))).toBe(true);
  });

  it('makes format characters visible, and JSON the same to a parser', () => {
    expect(visible('a\u202eb\u2066c\u200bd\ufeffe\tf\ng')).toBe(
      'a<U+202E>b<U+2066>c<U+200B>d<U+FEFF>e\tf\ng',
    );
    const value = { line: `x\u0085\u2028\u202e\u009b${HOSTILE}` };
    expect(jsonText(value)).not.toMatch(/[\u0080-\u009f\u2028\u202e]/);
    expect(JSON.parse(jsonText(value))).toEqual(value);
  });

  it('shows every format character, tag characters too, and JSON the same to a parser', () => {
    // Tag characters spell `IGNORE` unseen on a terminal (a model reading the text sees it); the
    // deprecated U+206E, U+180E, an interlinear annotation and a soft hyphen are format characters too.
    const hidden = `ok \u{E0049}\u{E0047}\u{E004E}\u{E004F}\u{E0052}\u{E0045} a\u206Eb\u180Ec\uFFF9d\u00ADe`;
    const shownAs =
      'ok <U+E0049><U+E0047><U+E004E><U+E004F><U+E0052><U+E0045> a<U+206E>b<U+180E>c<U+FFF9>d<U+00AD>e';
    expect(visible(hidden)).toBe(shownAs);
    expect(visibleKeepingColours(`\x1b[32mINFO\x1b[39m: ${hidden}`)).toBe(`\x1b[32mINFO\x1b[39m: ${shownAs}`);
    const json = jsonText({ line: hidden });
    expect(json).not.toMatch(/[\u206e\u180e\ufff9\u00ad\udb40]/);
    expect(json).toContain('\\udb40\\udc49');
    expect(JSON.parse(json)).toEqual({ line: hidden });
    expect(JSON.parse(inertJson(JSON.stringify({ msg: hidden })))).toEqual({ msg: hidden });
  });

  it("shows variation selectors that hide bytes, and keeps an emoji's or an ideograph's own", () => {
    // `IGNORE` smuggled as a run of selectors after one emoji (one byte each: U+E0100 + byte - 16), and
    // a run of the basic ones; an emoji's U+FE0F and an ideographic variation sequence are text.
    const smuggled = `ok \u{1F600}${[...'IGNORE'].map((c) => String.fromCodePoint(0xe0100 + c.charCodeAt(0) - 16)).join('')}`;
    expect(visible(smuggled)).toBe('ok \u{1F600}<U+E0139><U+E0137><U+E013E><U+E013F><U+E0142><U+E0135>');
    expect(visible('a\uFE0E\uFE0F\uFE00 b\u{E0100}')).toBe('a\uFE0E<U+FE0F><U+FE00> b<U+E0100>');
    const text = '\u2764\uFE0F ok \u{1F44D}\u{1F3FD} \u845B\u{E0100}\u57CE \u263A\uFE0E';
    expect(visible(text)).toBe(text);
    expect(UNSHOWABLE_NAME.test(`notes\u{1F600}\u{E0139}\u{E0137}.md`)).toBe(true);
    expect(UNSHOWABLE_NAME.test('\u2764\uFE0F.md')).toBe(false);
  });

  it("keeps a formatter's colours in the daemon's pretty log, and nothing else that acts", () => {
    const line = `\x1b[32mINFO\x1b[39m: session failed: ${HOSTILE}\n`;
    const shown = visibleKeepingColours(line);
    expect(shown.startsWith('\x1b[32mINFO\x1b[39m: session failed: remote: ^[]52;c;')).toBe(true);
    expect(shown.replaceAll('\x1b[32m', '').replaceAll('\x1b[39m', '')).not.toMatch(ACTS_ON_TERMINAL);
    const json = `${JSON.stringify({ msg: HOSTILE })}\n`;
    expect(inertJson(json)).not.toMatch(ACTS_ON_TERMINAL);
    expect(JSON.parse(inertJson(json))).toEqual({ msg: HOSTILE });
  });
});
