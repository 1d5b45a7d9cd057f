/**
 * The output of a session whose stop ended the setup step while it archived /agentd/out (a large output
 * takes longer than the few seconds before Podman's SIGKILL): what it had archived, in its part file, is
 * searched and kept as an archive cut there, and the record says why it ends early. No Podman.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createActor, toPromise } from 'xstate';
import { markNothingToSearch, wasSearched } from '../../src/adapters/output-archive.js';
import { SessionFiles } from '../../src/adapters/session-files.js';
import { RecordKeeper } from '../../src/daemon/record-keeper.js';
import { runnerActors } from '../../src/runner/actors.js';
import { SecretValue } from '../../src/secret-value.js';
import { FakePodman } from '../helpers/fake-podman.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';
import { finishedRecord } from '../helpers/session-record.js';

afterEach(() => cleanupAll());

const ID = '0000000000000001';
const VALUE = 'ghp_0123456789abcdefTOKENvalue';

/** A session's work dir with the part the setup step left: a tar of `files`, cut inside `big`. */
function stopped(files: Record<string, string>) {
  const stateDir = makeTempDir('agentd-unit-cut-');
  const sessionFiles = new SessionFiles(stateDir);
  const paths = sessionFiles.paths(ID);
  mkdirSync(paths.copy, { recursive: true });
  const tree = makeTempDir('agentd-unit-cut-out-');
  for (const [name, content] of Object.entries(files)) writeFileSync(join(tree, name), content);
  writeFileSync(join(tree, 'big'), Buffer.alloc(4 * 1024 * 1024, 'x'));
  const whole = execFileSync('tar', ['-cf', '-', '-C', tree, ...Object.keys(files), 'big'], {
    maxBuffer: 1 << 30,
  });
  writeFileSync(`${paths.archive}.part`, whole.subarray(0, whole.length / 2));
  return { stateDir, sessionFiles, paths };
}

async function endSession(
  setup: ReturnType<typeof stopped>,
  values: string[],
  podman = new FakePodman(),
  screened = true,
) {
  const { stateDir, sessionFiles, paths } = setup;
  const { screenOutput } = runnerActors(podman, {
    logFile: () => '/dev/null',
    logMaxBytes: 1000,
    line: () => {},
  });
  const input = {
    archive: paths.archive,
    withheld: paths.withheld,
    searched: paths.searched,
    values: values.map((value) => new SecretValue(value)),
  };
  if (screened) await toPromise(createActor(screenOutput, { input }).start());
  const keeper = new RecordKeeper(
    { recordsDir: join(stateDir, 'records'), maxAgeMs: 86_400_000, maxBytes: 1 << 30 },
    sessionFiles,
    pino({ level: 'silent' }),
  );
  const record = finishedRecord(ID, 'timed_out');
  const output = await keeper.seal(record, join(stateDir, 'none.log'));
  return { output, out: join(stateDir, 'records', 'demo', ID, 'out') };
}

describe('the output archive of a session stopped while it was archived', () => {
  it('keeps what was archived before the stop, and says the stop cut it short', async () => {
    const { output, out } = await endSession(stopped({ 'summary.txt': 'the summary\n' }), [VALUE]);
    expect(output?.missing).toBeUndefined();
    expect(output?.damaged).toMatch(/^the session was stopped before its output was archived whole/);
    expect(readFileSync(join(out, 'summary.txt'), 'utf8')).toBe('the summary\n');
    // The file the cut falls in, cut short.
    expect(existsSync(join(out, 'big'))).toBe(true);
    expect(output?.files).toBe(2);
  });

  it('is searched like any archive: a value in it withholds it', async () => {
    const { output, out } = await endSession(stopped({ 'leak.txt': `token ${VALUE}\n` }), [VALUE]);
    expect(output?.missing).toMatch(/^withheld: a file in \/agentd\/out held a credential value/);
    expect(existsSync(join(out, 'leak.txt'))).toBe(false);
  });

  it('on a host that does not see this machine, brings the part back and keeps it the same way', async () => {
    const setup = stopped({ 'summary.txt': 'the summary\n' });
    // What the container holds: only the part (the stop came before its rename to out.tar).
    const inContainer = join(makeTempDir('agentd-unit-cut-ctr-'), 'out.tar.part');
    renameSync(`${setup.paths.archive}.part`, inContainer);
    const copies: string[] = [];
    const podman = new (class extends FakePodman {
      override async copyFromContainer(_name: string, from: string, to: string): Promise<void> {
        copies.push(from);
        if (!from.endsWith('.part')) throw new Error(`no such file ${from}`);
        writeFileSync(to, readFileSync(inContainer));
      }
    })();
    const { copyOut } = runnerActors(podman, {
      logFile: () => '/dev/null',
      logMaxBytes: 1000,
      line: () => {},
    });
    const input = { container: 'c', from: '/run/agentd/out/out.tar', to: setup.paths.archive };
    // The runner goes on to the search whether the copy failed or not.
    await toPromise(createActor(copyOut, { input }).start()).catch(() => {});
    expect(copies).toEqual(['/run/agentd/out/out.tar', '/run/agentd/out/out.tar.part']);
    const { output, out } = await endSession(setup, [VALUE], podman);
    expect(output?.damaged).toMatch(/^the session was stopped before its output was archived whole/);
    expect(readFileSync(join(out, 'summary.txt'), 'utf8')).toBe('the summary\n');
  });

  it('of a session that ended while no daemon ran (given no value), is kept the same way', async () => {
    // A start settles it from its exited container and marks its archive as needing no search.
    const setup = stopped({ 'summary.txt': 'the summary\n' });
    markNothingToSearch(setup.paths.archive, setup.paths.searched);
    expect(wasSearched(setup.paths.archive, setup.paths.searched)).toBe(true);
    const { output, out } = await endSession(setup, [], undefined, false);
    expect(output?.damaged).toMatch(/^the session was stopped before its output was archived whole/);
    expect(readFileSync(join(out, 'summary.txt'), 'utf8')).toBe('the summary\n');
  });
});
