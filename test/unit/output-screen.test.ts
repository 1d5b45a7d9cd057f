/**
 * The search of a session's output archive for its credential values before the record keeps it
 * (src/adapters/output-archive.ts, the runner's screenOutput actor). No Podman: archives made here.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createActor, toPromise } from 'xstate';
import { CHUNK_BYTES, fileHoldsAny, NeedleSet, wasSearched } from '../../src/adapters/output-archive.js';
import type { AgentConfig } from '../../src/config/types.js';
import { LABEL_SECRETS } from '../../src/constants.js';
import { runnerActors } from '../../src/runner/actors.js';
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
    const needle = Buffer.from(VALUE);
    // Across the first and second boundaries by one byte each way, and right after one.
    const ats = [1, 2].flatMap((n) => [
      n * CHUNK_BYTES - needle.length + 1,
      n * CHUNK_BYTES - 1,
      n * CHUNK_BYTES,
    ]);
    for (const at of ats) {
      const file = join(dir, `f${at}`);
      const bytes = Buffer.alloc(3 * 1024 * 1024, 'x');
      needle.copy(bytes, at);
      writeFileSync(file, bytes);
      expect((await fileHoldsAny(file, new NeedleSet([needle])))?.held, `at ${at}`).toBe(true);
      expect(
        (await fileHoldsAny(file, new NeedleSet([Buffer.from('not-there-at-all')])))?.held,
        `at ${at}`,
      ).toBe(false);
    }
    expect(await fileHoldsAny(join(dir, 'missing'), new NeedleSet([needle]))).toBeUndefined();
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
