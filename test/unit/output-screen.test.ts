/**
 * The search of a session's output archive for its credential values before the record keeps it
 * (src/adapters/output-archive.ts, the runner's screenOutput actor). No Podman: archives made here.
 */
import { execFileSync } from 'node:child_process';
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createActor, toPromise } from 'xstate';
import { CHUNK_BYTES, fileHoldsAny, NeedleSet, wasSearched } from '../../src/adapters/output-archive.js';
import type { AgentConfig } from '../../src/config/types.js';
import { LABEL_SECRETS } from '../../src/constants.js';
import { runnerActors } from '../../src/runner/actors.js';
import { createMasker } from '../../src/runner/mask.js';
import { SecretValue } from '../../src/secret-value.js';
import { assembleSession } from '../../src/sessions/assemble.js';
import { planRun } from '../../src/sessions/run-plan.js';
import { FakePodman } from '../helpers/fake-podman.js';
import { AGENTS, REPO_TOKEN, request } from '../helpers/machine-fakes.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(() => cleanupAll());

const VALUE = 'ghp_0123456789abcdefTOKENvalue';

/** A tar archive of the files given (name → content), as the setup step makes of /agentd/out. */
function archiveOf(files: Record<string, string | Buffer>): {
  archive: string;
  withheld: string;
  searched: string;
} {
  const dir = makeTempDir('agentd-unit-screen-');
  const out = join(dir, 'tree');
  mkdirSync(out);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(out, name), content);
  const archive = join(dir, 'out.tar');
  execFileSync('tar', ['-cf', archive, '-C', out, '.']);
  return { archive, withheld: join(dir, 'out.withheld'), searched: join(dir, 'out.searched') };
}

/** A file that is the archive itself (its bytes are what is searched): no tar for each of many. */
function fileOf(content: string): { archive: string; withheld: string; searched: string } {
  const dir = makeTempDir('agentd-unit-screen-');
  writeFileSync(join(dir, 'out.tar'), content);
  return {
    archive: join(dir, 'out.tar'),
    withheld: join(dir, 'out.withheld'),
    searched: join(dir, 'out.searched'),
  };
}

/** An HS256 JWT: every one has the same header, and a payload that starts `{"sub":"`. */
function jwt(payload: object, key: string): string {
  const part = (json: object) => Buffer.from(JSON.stringify(json)).toString('base64url');
  const signed = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(payload)}`;
  return `${signed}.${createHmac('sha256', key).update(signed).digest('base64url')}`;
}

/** Two PKCS#1 RSA keys (PEM) with the same first 48 bytes: armour and ASN.1 prefix (of one length). */
function rsaKeys(): [string, string] {
  const seen = new Map<string, string>();
  for (let i = 0; i < 64; i++) {
    const key = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    }).privateKey;
    const other = seen.get(key.slice(0, 48));
    if (other !== undefined) return [other, key];
    seen.set(key.slice(0, 48), key);
  }
  throw new Error('no two keys of one length');
}

async function screen(
  paths: { archive: string; withheld: string; searched: string },
  values: string[] | undefined,
) {
  const { screenOutput } = runnerActors(new FakePodman(), {
    logFile: () => '/dev/null',
    logMaxBytes: 1000,
    line: () => {},
  });
  const input = { ...paths, values: values?.map((value) => new SecretValue(value)) };
  await toPromise(createActor(screenOutput, { input }).start());
  const kept = existsSync(paths.archive);
  // A kept archive is marked as searched (the seal keeps no other); a withheld one is not.
  expect(kept && wasSearched(paths.archive, paths.searched)).toBe(kept);
  return { kept, why: existsSync(paths.withheld) ? readFileSync(paths.withheld, 'utf8') : undefined };
}

describe('the output archive, searched for the session’s values', () => {
  it('is kept when no file holds a value', async () => {
    const paths = archiveOf({ 'report.txt': 'all good\n' });
    expect(await screen(paths, [VALUE])).toEqual({ kept: true, why: undefined });
  });

  it('is kept when a file holds only what any file like a multi-line credential has (PEM armour, JSON lines)', async () => {
    const key = [
      '-----BEGIN PRIVATE KEY-----',
      'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7',
      '-----END PRIVATE KEY-----',
      '',
    ].join('\n');
    const account = (id: string) =>
      JSON.stringify(
        {
          type: 'service_account',
          private_key_id: id,
          auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
        },
        null,
        2,
      );
    const other = key.replace('C7', 'DF').replace('vQ', 'vg');
    const paths = archiveOf({ 'fixture.pem': other, 'sa.json': account('f0e1d2c3b4a5968778695a4b3c2d1e0f') });
    expect(await screen(paths, [key, account('a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6')])).toEqual({
      kept: true,
      why: undefined,
    });
    const leaked = archiveOf({ 'copy.pem': key });
    expect((await screen(leaked, [key])).kept).toBe(false);
  });

  it.each([
    ['a .netrc', 'machine api.example.com\nlogin bob\npassword hunter2!xyz\n', 'password hunter2!xyz'],
    ['an .env', 'DB_USER=bob\nDB_PASSWORD=hunter2!xyz\n', 'DB_PASSWORD=hunter2!xyz'],
  ])('is withheld when a file holds one line of %s credential', async (_, value, line) => {
    const paths = archiveOf({ 'notes.txt': `copied: ${line}\n` });
    expect((await screen(paths, [value])).kept).toBe(false);
  });

  it.each([
    ['in a file, as it is', { 'a.txt': `token=${VALUE}\n` }],
    ['in a file, base64', { 'a.txt': `${Buffer.from(VALUE).toString('base64')}\n` }],
    ['in a file, as JSON with escapes', { 'a.json': JSON.stringify({ t: `${VALUE}` }) }],
    ['in a file’s name', { [`name-${VALUE}`]: 'x' }],
  ])('is withheld, with why, when a value is %s', async (_, files) => {
    const paths = archiveOf(files);
    const { kept, why } = await screen(paths, [VALUE]);
    expect(kept).toBe(false);
    expect(why).toMatch(/^withheld: a file in \/agentd\/out held a credential value/);
    expect(why).not.toContain(VALUE);
  });

  it('is withheld when a file holds base64 of a text with a value in it, wrapped, wherever the value falls (env | base64)', async () => {
    const token = 'ghp_0123456789abcdefghijABCDEFGHIJ012345';
    for (const width of [76, 64]) {
      // Every place the token may start at in a wrapped line, and each alignment of it in base64.
      for (let before = 0; before < width; before += 1) {
        const env = `${'#'.repeat(before)}\nHOME=/root\nTOKEN=${token}\nPATH=/usr/bin:/bin\n`;
        const lines =
          Buffer.from(env)
            .toString('base64')
            .match(new RegExp(`.{1,${width}}`, 'g')) ?? [];
        const paths = archiveOf({ 'env.b64': `${lines.join('\n')}\n` });
        expect((await screen(paths, [token])).kept, `${width} columns, ${before} bytes before`).toBe(false);
      }
    }
    // With CRLF (MIME), and base64 of other text wrapped so, it is kept.
    const crlf =
      Buffer.from(`x=1\nTOKEN=${token}\n`)
        .toString('base64')
        .match(/.{1,76}/g) ?? [];
    expect((await screen(archiveOf({ 'mail.txt': crlf.join('\r\n') }), [token])).kept).toBe(false);
    const other =
      Buffer.from('y'.repeat(300))
        .toString('base64')
        .match(/.{1,76}/g) ?? [];
    expect((await screen(archiveOf({ 'other.b64': other.join('\n') }), [token])).kept).toBe(true);
  });

  it('is kept when a file holds wrapped base64 of another value of the value’s kind (a JWT, an RSA key: their first bytes are the same), wherever it falls; withheld with the value', async () => {
    const a = jwt({ sub: '1234567890', name: 'Ann', iat: 1516239022 }, 'key-a');
    const b = jwt({ sub: '2345678901', name: 'Bob', iat: 1516239023 }, 'key-b');
    const keys = rsaKeys();
    // Each pair's first 48 bytes are the same: the base64 of those is a line of 64 columns of either.
    expect(b.slice(0, 48)).toBe(a.slice(0, 48));
    expect(keys[1].slice(0, 48)).toBe(keys[0].slice(0, 48));
    const env = (before: number, value: string) =>
      `${'#'.repeat(before)}\nHOME=/root\nTOKEN=${value}\nPATH=/usr/bin:/bin\n`;
    const wrap = (text: string, width: number, eol: string) =>
      `${(
        Buffer.from(text)
          .toString('base64')
          .match(new RegExp(`.{1,${width}}`, 'g')) ?? []
      ).join(eol)}${eol}`;
    for (const [value, other] of [[a, b], keys] as [string, string][]) {
      for (const [width, eol] of [
        [76, '\n'],
        [64, '\n'],
        [76, '\r\n'],
      ] as const) {
        const kind = `${value.slice(0, 5)}, ${width} columns${eol.length > 1 ? ', CRLF' : ''}`;
        // The other value at 80 places, every column and alignment of it in a line: none is the value.
        const files: Record<string, string> = {};
        for (let before = 0; before < 80; before++)
          files[`env${before}.b64`] = wrap(env(before, other), width, eol);
        expect((await screen(archiveOf(files), [value])).kept, kind).toBe(true);
        // The value itself at each of those places is found.
        for (let before = 0; before < 80; before++) {
          const { kept } = await screen(fileOf(wrap(env(before, value), width, eol)), [value]);
          expect(kept, `${kind}, ${before} bytes before`).toBe(false);
        }
      }
    }
    // A line's share of a value's wrapped base64 alone is not the value (the same line of the other).
    const share = Buffer.from(`${'x'.repeat(48)}${a}`)
      .toString('base64')
      .slice(0, 76);
    expect((await screen(fileOf(`${share}\n`), [a])).kept).toBe(true);
  });

  it.each([
    [
      'with escape sequences inside it (grep --color=always)',
      'config: \x1b[01;31m\x1b[Kghp_\x1b[m\x1b[K0123456789abcdefghijABCDEFGHIJ012345 end\n',
      'ghp_0123456789abcdefghijABCDEFGHIJ012345',
    ],
    [
      'URL-encoded in part (urllib.parse.quote keeps /)',
      'https://u:wJalrXUtnFEMI/K7MDENG%2BbPxRfiCYEXAMPLEKEY@example.com/\n',
      'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
    ],
    [
      'form-encoded in part (a space as +)',
      'q=correct+horse/battery+staple&x=1\n',
      'correct horse/battery staple',
    ],
    ['quoted by printf %q', 'export X=Secr3tValue\\!MoreSecretText\n', 'Secr3tValue!MoreSecretText'],
    [
      "in bash's ANSI-C quoting (declare -p of a value with a tab)",
      "declare -x X=$'Ab12\\tCd34\\'Ef56-secret'\n",
      "Ab12\tCd34'Ef56-secret",
    ],
    [
      'in octal (printf %q of non-ASCII in the C locale)',
      "X=$'p\\303\\244ssw\\303\\266rd-42'\n",
      'pässwörd-42',
    ],
    [
      'quoted by printf %q, its escape coloured (a highlighter)',
      'X=Secr3tValue\x1b[35m\\!\x1b[0mMoreSecretText\n',
      'Secr3tValue!MoreSecretText',
    ],
    [
      // Its first 9 bytes end the first line (all a line of it holds: masking hides them there).
      'its base64 starting a wrapped line, the rest on the next',
      `${(
        Buffer.from(`${'x'.repeat(48)}ghp_0123456789abcdefghijABCDEFGHIJ012345`)
          .toString('base64')
          .match(/.{1,76}/g) ?? []
      ).join('\n')}\n`,
      'ghp_0123456789abcdefghijABCDEFGHIJ012345',
    ],
  ])('is withheld when a file holds a value %s, as masking finds it', async (_, content, value) => {
    for (const files of [{ 'a.txt': content }, { 'a.txt': `first line\n${content}last\n` }]) {
      const { kept, why } = await screen(archiveOf(files), [value]);
      expect(kept).toBe(false);
      expect(why).toMatch(/^withheld: a file in \/agentd\/out held a credential value/);
    }
  });

  it('is kept when its files have escape sequences, percent escapes and backslashes but no value, withheld with one', async () => {
    const key = `-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n`;
    const files = {
      'build.log': '\x1b[1;32mok\x1b[0m 12 tests\nGET /search?q=a%20b%2Fc&x=1+2\n',
      'script.sh': 'printf %q a\\!b\\ c \\"d\\"\n',
      // The armour of a PEM key is in every PEM file: not a value, coloured or not.
      'other.pem': '\x1b[1m-----BEGIN PRIVATE KEY-----\x1b[0m\nQUJD\n-----END%20PRIVATE KEY-----\n',
      'data.bin': Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251)),
    };
    const values = [VALUE, 'Secr3tValue!MoreSecretText', key];
    expect(await screen(archiveOf(files), values)).toEqual({ kept: true, why: undefined });
    const colored = { ...files, 'grep.log': `token: \x1b[1m${VALUE.slice(0, 9)}\x1b[0m${VALUE.slice(9)}\n` };
    expect((await screen(archiveOf(colored), values)).kept).toBe(false);
  });

  it('is withheld when the values are not known (an adopted session whose values could not be read back)', async () => {
    const paths = archiveOf({ 'report.txt': 'all good\n' });
    const { kept, why } = await screen(paths, undefined);
    expect(kept).toBe(false);
    expect(why).toMatch(/^withheld: the credential values the container was given could not be read back/);
  });

  it('is left alone when the session has no values, and when there is no archive', async () => {
    const paths = archiveOf({ 'a.txt': VALUE });
    expect(await screen(paths, [])).toEqual({ kept: true, why: undefined });
    const none = {
      archive: join(makeTempDir('agentd-unit-screen-'), 'out.tar'),
      withheld: '/nonexistent/x',
      searched: '/nonexistent/y',
    };
    expect(await screen(none, [VALUE])).toEqual({ kept: false, why: undefined });
  });
});

describe('fileHoldsAny', () => {
  it('finds a needle cut by the boundary of the chunks it reads', async () => {
    const dir = makeTempDir('agentd-unit-screen-');
    // One line of 3 MiB, or lines of 100 bytes; a needle of one line, or of lines (a PEM key's).
    for (const fill of ['x', `${'x'.repeat(99)}\n`]) {
      for (const needle of [Buffer.from(VALUE), Buffer.from(`${VALUE}\nMIIEvQIBADANBgkqhkiG9w0\n${VALUE}`)]) {
        // Across the first and second boundaries by one byte each way, right after one, the ends.
        const ats = [1, 2].flatMap((n) => [
          n * CHUNK_BYTES - needle.length + 1,
          n * CHUNK_BYTES - 1,
          n * CHUNK_BYTES,
        ]);
        for (const at of [0, ...ats, 3 * 1024 * 1024 - needle.length]) {
          const file = join(dir, `f${at}`);
          const bytes = Buffer.alloc(3 * 1024 * 1024, fill);
          needle.copy(bytes, at);
          writeFileSync(file, bytes);
          const where = `at ${at}, ${fill.length} bytes a line, ${needle.length} bytes`;
          expect((await fileHoldsAny(file, new NeedleSet([needle])))?.held, where).toBe(true);
          expect(
            (await fileHoldsAny(file, new NeedleSet([Buffer.from('not-there-at-all')])))?.held,
            where,
          ).toBe(false);
        }
      }
    }
    expect(await fileHoldsAny(join(dir, 'missing'), new NeedleSet([Buffer.from(VALUE)]))).toBeUndefined();
  });
});

describe('fileHoldsAny, with what masking finds in a line', () => {
  const value = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
  const quoted = 'wJalrXUtnFEMI/K7MDENG%2BbPxRfiCYEXAMPLEKEY';
  const holds = async (file: string, values: string[] = [value]) => {
    const masking = createMasker(values);
    const needles = new NeedleSet(masking.forms.map((form) => Buffer.from(form)));
    return (await fileHoldsAny(file, needles, undefined, masking))?.held;
  };

  it('finds a value in a line cut by the boundary of the chunks it reads, and in a line longer than a piece', async () => {
    const dir = makeTempDir('agentd-unit-screen-');
    // Percent escapes, an escape sequence, printf %q: each with what makes it one (`%`, ESC, `\`)
    // last in a chunk and first in the next too.
    const printed = [
      quoted,
      `${value.slice(0, 10)}\x1b[1m${value.slice(10)}`,
      'Secr3tValue\\!MoreSecretText',
    ];
    for (const text of printed) {
      const sign = Math.max(...['%', '\x1b', '\\'].map((char) => text.indexOf(char)));
      const ats = [1, 2].flatMap((n) => [
        n * CHUNK_BYTES - text.length + 1,
        n * CHUNK_BYTES - 20,
        n * CHUNK_BYTES,
        n * CHUNK_BYTES - 1 - sign,
        n * CHUNK_BYTES - sign,
      ]);
      for (const separator of ['\n', 'x']) {
        for (const at of ats) {
          // Lines of 100 bytes, or one line of 1 MiB (no line break at all).
          const bytes = Buffer.from(`${'y'.repeat(99)}${separator}`.repeat(10_486));
          bytes.write(text, at);
          const file = join(dir, `f${at}${separator === 'x' ? 'long' : ''}`);
          writeFileSync(file, bytes);
          const where = `${JSON.stringify(text)} at ${at}, ${separator === 'x' ? 'one line' : 'lines'}`;
          expect(await holds(file, [value, 'Secr3tValue!MoreSecretText']), where).toBe(true);
          bytes.write(text.replace('EXAMPLE', 'ELPMAXE').replace('More', 'Less'), at);
          writeFileSync(file, bytes);
          expect(await holds(file, [value, 'Secr3tValue!MoreSecretText']), `${where}, not the value`).toBe(
            false,
          );
        }
      }
    }
  });

  it('finds a value anywhere in base64 wrapped across lines (GNU base64, openssl), in a run longer than a chunk too', async () => {
    const dir = makeTempDir('agentd-unit-screen-');
    const value = (length: number) =>
      Array.from({ length }, (_, i) => 'abcdefghijklmnopqrstuvwxyz0123456789'[(i * 7) % 36]).join('');
    // 90 bytes: no line holds all of one of its wrapped pieces wherever it falls; 150: lines of it
    // hold nothing else (its middle lines), which masking does not find on their own.
    for (const long of [value(90), value(150)]) {
      const needles = new NeedleSet(createMasker([long]).forms.map((form) => Buffer.from(form)));
      for (const width of [76, 64]) {
        const wrap = (bytes: Buffer) =>
          (bytes.toString('base64').match(new RegExp(`.{1,${width}}`, 'g')) ?? []).join('\n');
        // Every column and alignment it may start at in a line, and in a run longer than a chunk.
        for (const before of [...Array.from({ length: (width / 4) * 3 }, (_, i) => i), 700_000]) {
          const text = Buffer.concat([Buffer.alloc(before, 'k'), Buffer.from(long), Buffer.alloc(100, 'z')]);
          const file = join(dir, `b${long.length}-${width}-${before}`);
          writeFileSync(file, wrap(text));
          // The needles alone (no masking): lines of base64 in a row are searched as one.
          const where = `${long.length} bytes, ${width} columns, ${before} bytes before`;
          expect((await fileHoldsAny(file, needles))?.held, where).toBe(true);
          // Every fifth byte of it otherwise: no form of it is in a line, nor in the lines joined.
          for (let i = 2; i < long.length; i += 5) text[before + i] = 0x21;
          writeFileSync(file, wrap(text));
          expect((await fileHoldsAny(file, needles))?.held, `${where}, changed`).toBe(false);
        }
      }
    }
  });

  it('finds a value on the last line without a line break, and reads a binary file of escapes and NULs', async () => {
    const dir = makeTempDir('agentd-unit-screen-');
    const last = join(dir, 'last');
    writeFileSync(last, `first\n${quoted}`);
    expect(await holds(last)).toBe(true);
    const binary = join(dir, 'binary');
    const noise = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < noise.length; i++)
      noise[i] = [0x1b, 0x25, 0x00, 0x5c, 0x2b, 0x41, 0x0a][(i * 31) % 7] as number;
    writeFileSync(binary, noise);
    expect(await holds(binary, [value, 'Secr3tValue!MoreSecretText'])).toBe(false);
    noise.write(`\x1b[1m${value.slice(0, 10)}\x1b[0m${value.slice(10)}`, 3 * 1024 * 1024 + 5);
    writeFileSync(binary, noise);
    expect(await holds(binary, [value, 'Secr3tValue!MoreSecretText'])).toBe(true);
  });
});

describe('NeedleSet', () => {
  it('finds any of many needles in one pass, at the start, the end and overlapping ones', () => {
    const needles = new NeedleSet(['abcd', 'bcde', 'xyz0', 'zz99zz'].map((n) => Buffer.from(n)));
    expect(needles.foundIn(Buffer.from('abcd'))).toBe(true);
    expect(needles.foundIn(Buffer.from('..bcde'))).toBe(true);
    expect(needles.foundIn(Buffer.from('....zz99zz'))).toBe(true);
    expect(needles.foundIn(Buffer.from('abc bcd xyz zz99z'))).toBe(false);
    expect(new NeedleSet([]).foundIn(Buffer.from('anything'))).toBe(false);
  });

  it('walks every needle that starts with the same two bytes', () => {
    const needles = new NeedleSet(['ab12', 'ab34', 'ab56xx'].map((n) => Buffer.from(n)));
    expect(needles.foundIn(Buffer.from('..ab56xx'))).toBe(true);
    expect(needles.foundIn(Buffer.from('..ab34'))).toBe(true);
    expect(needles.foundIn(Buffer.from('ab1 ab3 ab56x'))).toBe(false);
  });

  it('takes thousands of needles at once (a long value’s forms), finding each', () => {
    // 12,000 needles of 76 bytes (the wrapped base64 of a 100 KB value): comparing each pair to drop
    // those that hold another took 5 s, with the event loop blocked at a session's start.
    let seed = 3;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const needles = Array.from({ length: 12_000 }, () =>
      Buffer.from(Array.from({ length: 57 }, () => random() & 0xff)).toString('base64'),
    ).map((n) => Buffer.from(n));
    // Counted, not timed: the pairwise comparison is 72 million includes() calls; stopped at 100,000.
    const includes = Buffer.prototype.includes;
    let calls = 0;
    Buffer.prototype.includes = function (this: Buffer, ...args: Parameters<Buffer['includes']>) {
      if (++calls > 100_000) throw new Error('NeedleSet compared its needles pair by pair');
      return includes.apply(this, args);
    };
    let set: NeedleSet;
    try {
      set = new NeedleSet(needles);
    } finally {
      Buffer.prototype.includes = includes;
    }
    expect(calls).toBeLessThan(needles.length);
    for (const needle of [needles[0], needles[5_000], needles[11_999]] as Buffer[])
      expect(set.foundIn(Buffer.concat([Buffer.from('before '), needle, Buffer.from(' after')]))).toBe(true);
    expect(set.foundIn(Buffer.from('nothing of them here'.repeat(100)))).toBe(false);
  });
});

describe('the label of a session container', () => {
  const settings = { instanceId: 'e'.repeat(32), stopGraceMs: 1000, workDir: '/var/lib/agentd/work' };
  const demo = AGENTS.find((a) => a.name === 'demo') as AgentConfig;

  it('says how many secrets it was given: none, or a repo token alone as one', () => {
    const none = assembleSession(request('0123456789abcdef'), demo, { credentials: [] });
    expect(planRun(none, settings).container.labels[LABEL_SECRETS]).toBe('0');
    const token = assembleSession(request('0123456789abcdef'), demo, {
      credentials: [],
      repoToken: new SecretValue(REPO_TOKEN),
    });
    expect(planRun(token, settings).container.labels[LABEL_SECRETS]).toBe('1');
  });
});
