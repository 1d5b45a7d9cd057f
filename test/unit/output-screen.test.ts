/**
 * The search of a session's output archive for its credential values before the record keeps it
 * (src/adapters/output-archive.ts, the runner's screenOutput actor). No Podman: archives made here.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createActor, toPromise } from 'xstate';
import { fileHoldsAny } from '../../src/adapters/output-archive.js';
import { runnerActors } from '../../src/runner/actors.js';
import { SecretValue } from '../../src/secret-value.js';
import { FakePodman } from '../helpers/fake-podman.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(() => cleanupAll());

const VALUE = 'ghp_0123456789abcdefTOKENvalue';

/** A tar archive of the files given (name → content), as the setup step makes of /agentd/out. */
function archiveOf(files: Record<string, string | Buffer>): { archive: string; withheld: string } {
  const dir = makeTempDir('agentd-unit-screen-');
  const out = join(dir, 'tree');
  mkdirSync(out);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(out, name), content);
  const archive = join(dir, 'out.tar');
  execFileSync('tar', ['-cf', archive, '-C', out, '.']);
  return { archive, withheld: join(dir, 'out.withheld') };
}

async function screen(paths: { archive: string; withheld: string }, values: string[] | undefined) {
  const { screenOutput } = runnerActors(new FakePodman(), {
    logFile: () => '/dev/null',
    logMaxBytes: 1000,
    line: () => {},
  });
  const input = { ...paths, values: values?.map((value) => new SecretValue(value)) };
  await toPromise(createActor(screenOutput, { input }).start());
  return {
    kept: existsSync(paths.archive),
    why: existsSync(paths.withheld) ? readFileSync(paths.withheld, 'utf8') : undefined,
  };
}

describe('the output archive, searched for the session’s values', () => {
  it('is kept when no file holds a value', async () => {
    const paths = archiveOf({ 'report.txt': 'all good\n' });
    expect(await screen(paths, [VALUE])).toEqual({ kept: true, why: undefined });
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
    const none = { archive: join(makeTempDir('agentd-unit-screen-'), 'out.tar'), withheld: '/nonexistent/x' };
    expect(await screen(none, [VALUE])).toEqual({ kept: false, why: undefined });
  });
});

describe('fileHoldsAny', () => {
  it('finds a needle cut by the boundary of the chunks it reads (1 MiB)', async () => {
    const dir = makeTempDir('agentd-unit-screen-');
    const needle = Buffer.from(VALUE);
    for (const at of [1024 * 1024 - 5, 1024 * 1024, 2 * 1024 * 1024 - needle.length]) {
      const file = join(dir, `f${at}`);
      const bytes = Buffer.alloc(3 * 1024 * 1024, 'x');
      needle.copy(bytes, at);
      writeFileSync(file, bytes);
      expect(await fileHoldsAny(file, [needle]), `at ${at}`).toBe(true);
      expect(await fileHoldsAny(file, [Buffer.from('not-there-at-all')]), `at ${at}`).toBe(false);
    }
    expect(await fileHoldsAny(join(dir, 'missing'), [needle])).toBeUndefined();
  });
});
