/**
 * A session's credential values have their forms made once: its output masker (at each attachment)
 * and its output archive's search derive from them (src/runner/actors.ts, formsOfSession), where each
 * made them again (ten values of 128 KB: seconds of the daemon's one thread). And the archive's search
 * finds what it found when it made its own: the same forms as createMasker(values, { except }).
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createActor, toPromise } from 'xstate';
import type { AgentConfig } from '../../src/config/types.js';
import { runnerMachineFor } from '../../src/machines/runner.machine.js';
import { formsOfSession, outputSearch, runnerActors } from '../../src/runner/actors.js';
import { createMasker, MASK, maskerOf } from '../../src/runner/mask.js';
import { SecretValue } from '../../src/secret-value.js';
import { assembleSession } from '../../src/sessions/assemble.js';
import type { RunResult } from '../../src/sessions/types.js';
import { FakePodman } from '../helpers/fake-podman.js';
import { AGENTS, request, settle } from '../helpers/machine-fakes.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

/** Every value formsOf was asked for the forms of, as bytes. */
const asked = vi.hoisted(() => ({ values: [] as Buffer[] }));

vi.mock('../../src/runner/mask-forms.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/runner/mask-forms.js')>();
  return {
    ...original,
    formsOf: (value: string | Uint8Array) => {
      asked.values.push(Buffer.from(value));
      return original.formsOf(value);
    },
  };
});

afterEach(() => cleanupAll());

/** How many times the forms of `value` were made. */
function timesFormed(value: string): number {
  return asked.values.filter((bytes) => bytes.equals(Buffer.from(value))).length;
}

const TOKEN = 'ghp_0123456789abcdefghijABCDEFGHIJ012345';
const PEM = generateKeyPairSync('rsa', {
  modulusLength: 1024,
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  publicKeyEncoding: { type: 'spki', format: 'pem' },
}).privateKey;
const ACCOUNT = JSON.stringify(
  {
    type: 'service_account',
    project_id: 'demo-project-4821',
    private_key_id: 'a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6',
    private_key: PEM,
    client_email: 'runner@demo-project-4821.iam.gserviceaccount.com',
    token_uri: 'https://oauth2.googleapis.com/token',
  },
  null,
  2,
);

const SETTINGS = { instanceId: 'e'.repeat(32), stopGraceMs: 1000, workDir: '/var/lib/agentd/work' };
const CONTAINER = 'agentd-eeeeeeee-demo-0123456789abcdef';

describe("a session's masking", () => {
  it('makes the forms of each value once for the output masker and the output archive’s search', async () => {
    const podman = new FakePodman('auto');
    const { repoToken: _none, ...agent } = AGENTS[0] as AgentConfig;
    const values = { KEY: PEM, TOKEN };
    const session = assembleSession(request('0123456789abcdef'), agent, {
      credentials: Object.entries(values).map(([name, value]) => ({ name, value: new SecretValue(value) })),
    });
    const output: string[] = [];
    const dir = makeTempDir('agentd-unit-forms-');
    const machine = runnerMachineFor(SETTINGS).provide({
      actors: runnerActors(podman, {
        logFile: (id) => `${dir}/${id}.log`,
        logMaxBytes: 100_000,
        line: (_, line) => output.push(line.text),
      }),
    });
    asked.values.length = 0;
    const actor = createActor(machine, { input: { session } }).start();
    const result = toPromise(actor) as Promise<RunResult>;
    const deadline = Date.now() + 30_000;
    while (podman.stream() === undefined && Date.now() < deadline) await settle();
    const stream = podman.stream() ?? expect.fail('never attached');
    const marker = podman.markerOf(CONTAINER);
    for (const line of ['started', 'phase cloning', 'phase running']) stream.line(`${marker} ${line}`);
    stream.line(`token=${TOKEN}`);
    stream.line(`${marker} ended 0 0`);
    stream.exit(0);
    expect(await result).toMatchObject({ outcome: 'succeeded' });
    expect(output).toEqual([`token=${MASK}`]);
    // The archive was searched (screenOutput ran: its search asked for the forms, or took them).
    expect(podman.calls.map((c) => c.op)).toContain('removeContainers');
    expect(timesFormed(PEM)).toBe(1);
    expect(timesFormed(TOKEN)).toBe(1);
  });

  it('makes them again for other values, and once more after the archive’s search (they are let go)', async () => {
    const values = [new SecretValue(TOKEN)];
    asked.values.length = 0;
    await formsOfSession(values);
    await formsOfSession(values);
    expect(timesFormed(TOKEN)).toBe(1);
    // The same bytes in other values (an adopted session's, read back): not taken for them.
    await formsOfSession([new SecretValue(TOKEN)]);
    expect(timesFormed(TOKEN)).toBe(2);
    await formsOfSession([...values, new SecretValue(PEM)]);
    expect(timesFormed(TOKEN)).toBe(3);
    // The session's last use forgets them.
    const paths = archiveOf({ 'a.txt': 'nothing here\n' });
    const { screenOutput } = runnerActors(new FakePodman(), {
      logFile: () => '/dev/null',
      logMaxBytes: 1000,
      line: () => {},
    });
    await toPromise(createActor(screenOutput, { input: { ...paths, values } }).start());
    await formsOfSession(values);
    expect(timesFormed(TOKEN)).toBe(5);
  });
});

/** A tar archive of the files given (name → content), as the setup step makes of /agentd/out. */
function archiveOf(files: Record<string, string>) {
  const dir = makeTempDir('agentd-unit-forms-');
  const tree = join(dir, 'tree');
  mkdirSync(tree);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(tree, name), content);
  const archive = join(dir, 'out.tar');
  execFileSync('tar', ['-cf', archive, '-C', tree, '.']);
  return { archive, withheld: join(dir, 'out.withheld'), searched: join(dir, 'out.searched') };
}

/** The lines the archive's search leaves out, as it did: a PEM key's armour, every line of JSON, punctuation. */
function exceptOf(values: readonly string[]): Set<string> {
  const lines = new Set<string>();
  for (const text of values) {
    const split = text.split(/\r\n|\r|\n/);
    if (split.length < 2) continue;
    let json = false;
    try {
      JSON.parse(text.trim());
      json = /^\s*[[{]/.test(text);
    } catch {}
    for (const line of split)
      if (json || /^-----(BEGIN|END) [A-Z0-9 ]+-----$/.test(line) || !/[A-Za-z0-9]{4}/.test(line))
        lines.add(line);
  }
  return lines;
}

describe('the output archive’s search, from the session’s forms', () => {
  const cases: [string, string[], Record<string, string>, Record<string, string>][] = [
    [
      'a PEM key',
      [PEM],
      { 'copy.pem': PEM, 'line.txt': `x ${(PEM.split('\n')[5] as string).slice(0, 64)} y\n` },
      { 'other.pem': '-----BEGIN PRIVATE KEY-----\nQUJDRA==\n-----END PRIVATE KEY-----\n' },
    ],
    [
      'a service account file',
      [ACCOUNT],
      { 'key.txt': `${PEM}`, 'sa.json': ACCOUNT, 'escaped.json': JSON.stringify({ k: PEM }) },
      {
        'other.json': JSON.stringify(
          { type: 'service_account', token_uri: 'https://oauth2.googleapis.com/token' },
          null,
          2,
        ),
      },
    ],
    [
      'a token in wrapped base64',
      [TOKEN],
      {
        'env.b64': `${(
          Buffer.from(`${'#'.repeat(30)}\nTOKEN=${TOKEN}\n`)
            .toString('base64')
            .match(/.{1,76}/g) ?? []
        ).join('\n')}\n`,
      },
      {
        'other.b64': `${(
          Buffer.from('y'.repeat(300))
            .toString('base64')
            .match(/.{1,76}/g) ?? []
        ).join('\n')}\n`,
      },
    ],
    [
      'values with escape sequences, percent escapes and printf %q',
      ['Secr3tValue!MoreSecretText', 'correct horse/battery staple', "Ab12\tCd34'Ef56-secret"],
      {
        'grep.log': `token: \x1b[1mSecr3t\x1b[0mValue!MoreSecretText\n`,
        'q.sh': 'export X=Secr3tValue\\!MoreSecretText\n',
        'hl.sh': 'X=Secr3tValue\x1b[35m\\!\x1b[0mMoreSecretText\n',
        'form.txt': 'q=correct+horse/battery+staple&x=1\n',
        'url.txt': 'q=correct%20horse%2Fbattery%20staple\n',
        'decl.sh': "declare -x X=$'Ab12\\tCd34\\'Ef56-secret'\n",
      },
      { 'build.log': '\x1b[1;32mok\x1b[0m 12 tests\nGET /search?q=a%20b%2Fc&x=1+2\nprintf %q a\\!b\\ c\n' },
    ],
  ];

  it.each(cases)(
    'for %s: the forms createMasker makes with the same lines left out, and the same finds, cold or after the masker',
    async (_, texts, leaks, clean) => {
      const reference = createMasker(
        texts.map((text) => Buffer.from(text)),
        { except: exceptOf(texts) },
      );
      const { screenOutput } = runnerActors(new FakePodman(), {
        logFile: () => '/dev/null',
        logMaxBytes: 1000,
        line: () => {},
      });
      for (const warm of [false, true]) {
        const values = texts.map((text) => new SecretValue(text));
        // The session's masker first (its attachment), or the search alone (a restarted daemon's).
        if (warm) await maskerOf(await formsOfSession(values));
        const { masking } = await outputSearch(values);
        expect(masking.identifying).toEqual(reference.identifying);
        expect(masking.reach).toBe(reference.reach);
        expect(Buffer.from(masking.readings.triggers).equals(Buffer.from(reference.readings.triggers))).toBe(
          true,
        );
        const screen = async (files: Record<string, string>) => {
          const paths = archiveOf(files);
          await toPromise(createActor(screenOutput, { input: { ...paths, values } }).start());
          return existsSync(paths.archive);
        };
        if (warm) await formsOfSession(values);
        expect(await screen(clean), `clean, warm ${warm}`).toBe(true);
        for (const [name, content] of Object.entries(leaks)) {
          if (warm) await formsOfSession(values);
          expect(await screen({ [name]: content, ...clean }), `${name}, warm ${warm}`).toBe(false);
        }
      }
    },
  );
});
