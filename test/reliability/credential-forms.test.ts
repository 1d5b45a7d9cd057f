/**
 * Credentials as they really are: a token read with CRLF, a PEM key with its trailing newline, an env
 * value ending in a newline, a Latin-1 password, and a file rotated while the daemon was down. Each is
 * delivered to the agent byte-exact (checked by length and sha256 inside the container) and never
 * appears in clear in the live output, `agentd logs`, the log file, the record or the daemon's log.
 * An adopted session masks with what its container received; when that cannot be read back, its
 * output is withheld.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchDaemon, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { type Gate, startGate } from '../helpers/gate.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { makeTempDir } from '../helpers/resources.js';
import { afterEachTest, agent, crash, FakePodman, killOrphans, recordFigures, waitUntil } from './harness.js';

let git: GitServer;
let gate: Gate;
const daemons: TestDaemon[] = [];
const figures = { faultsInjected: 0, sessionsRecovered: 0, sessions: 0, objectsLeftBehind: 0 };

beforeAll(async () => {
  [git, gate] = await Promise.all([startGitServer(), startGate()]);
});
afterAll(async () => {
  await Promise.allSettled([git?.stop(), gate?.close()]);
  await recordFigures('credential-forms', figures);
});
afterEach(async () => {
  gate.hold();
  await afterEachTest(figures, daemons);
});

function tracked(d: TestDaemon): TestDaemon {
  daemons.push(d);
  return d;
}

const tag = randomBytes(4).toString('hex');
/**
 * Every daemon here, the restarted ones that adopt a session too, logs at trace, the lowest level: a
 * value in clear in a debug or trace line of its log fails the test as one in an info line does.
 */
const TRACE = ['--log-level', 'trace'];
const PEM_BODY = [
  '-----BEGIN PRIVATE KEY-----',
  `MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8c${tag}`,
  `MzEfYyjiWA4R4M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuY${tag}`,
  '-----END PRIVATE KEY-----',
].join('\n');

/** Each form: the file or env content, and the bytes the agent must receive. */
const FORMS = {
  CRLF: { file: Buffer.from(`tok-crlf-${tag}\r\n`), delivered: Buffer.from(`tok-crlf-${tag}`) },
  PEM: { file: Buffer.from(`${PEM_BODY}\n`), delivered: Buffer.from(PEM_BODY) },
  LATIN: {
    file: Buffer.from(`pässwörd-${tag.slice(0, 5)}`, 'latin1'),
    delivered: Buffer.from(`pässwörd-${tag.slice(0, 5)}`, 'latin1'),
  },
  NL: { env: `env-secret-nl-${tag}\n`, delivered: Buffer.from(`env-secret-nl-${tag}\n`) },
};

/** What must never show: every form of every value a reader would recognise as the value. */
function clearForms(value: Buffer): string[] {
  const forms = new Set<string>();
  for (const text of [value.toString('utf8'), value.toString('latin1')]) {
    forms.add(text);
    forms.add(text.replace(/[\r\n]+$/, ''));
    for (const line of text.split(/\r\n|\r|\n/)) if (line.length >= 8) forms.add(line);
  }
  forms.add(value.toString('base64'));
  return [...forms].filter((f) => f.length >= 8);
}

function expectNoClear(where: string, text: string, values: Buffer[]): void {
  for (const value of values) {
    for (const form of clearForms(value)) {
      expect(text.includes(form), `${where} shows ${JSON.stringify(form)}`).toBe(false);
    }
  }
}

/** Prints, for each variable, its length and sha256 as received, then the value several ways. */
const PRINT_ALL = [
  'for n in CRLF PEM LATIN NL; do',
  '  eval "v=\\$$n"',
  '  echo "sum:$n:$(printf %s "$v" | wc -c):$(printf %s "$v" | sha256sum | cut -d" " -f1)"',
  '  echo "$v"',
  '  printf "X=%s;\\n" "$v"',
  '  printf %s "$v" | base64 -w0; echo',
  // bash's printf %q: $'...' with \\n, and octal for the Latin-1 bytes in the C locale.
  String.raw`  bash -c 'printf "Q=%q;\n" "$1"' _ "$v"`,
  'done',
].join('\n');

describe('credential forms', () => {
  it('are delivered byte-exact and never shown in clear anywhere', async () => {
    const dir = makeTempDir('agentd-rel-creds-');
    const credentials = Object.entries(FORMS).map(([name, form]) => {
      if ('env' in form) return { name, source: `env:AGENTD_REL_${name}` };
      const path = join(dir, name.toLowerCase());
      writeFileSync(path, form.file, { mode: 0o600 });
      return { name, source: `file:${path}` };
    });
    const d = tracked(
      await startDaemon(
        { agents: [agent('printer', git.url(), ['sh', '-c', PRINT_ALL], { credentials })] },
        { env: { AGENTD_REL_NL: FORMS.NL.env }, args: TRACE },
      ),
    );
    const live = await d.cli(['trigger', 'printer']);
    expect(live.code, live.stderr).toBe(0);
    const id = /session ([0-9a-f]{16})/.exec(live.stdout + live.stderr)?.[1] ?? '';
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    for (const [name, form] of Object.entries(FORMS)) {
      const sha = createHash('sha256').update(form.delivered).digest('hex');
      expect(live.stdout, `${name} as the agent received it`).toContain(
        `sum:${name}:${form.delivered.length}:${sha}`,
      );
    }
    // The Latin-1 value arrived as its own bytes, not re-encoded as UTF-8.
    expect(FORMS.LATIN.delivered.length).toBe(14);
    expect(live.stdout).toContain('X=********;');
    // Each value as printf %q prints it ($'...' escapes for the PEM's and NL's newlines, the Latin-1
    // bytes in octal) is masked whole: no line of it still shows the value's distinguishing part.
    const quoted = live.stdout.split('\n').filter((l) => l.startsWith('Q='));
    expect(quoted, live.stdout).toHaveLength(4);
    for (const line of quoted) {
      expect(line).toContain('********');
      expect(line).not.toContain(tag.slice(0, 5));
    }
    const logs = await d.cli(['logs', id]);
    const values = Object.values(FORMS).map((f) => f.delivered);
    expectNoClear('live output', live.stdout + live.stderr, values);
    expectNoClear('agentd logs', logs.stdout + logs.stderr, values);
    expectNoClear(
      'the log file',
      readFileSync(join(d.files.stateDir, 'sessions', `${id}.log`), 'utf8'),
      values,
    );
    expectNoClear('the record', JSON.stringify(d.record(id)), values);
    expectNoClear("the daemon's log", d.stderr(), values);
    figures.sessions++;
    expect(await d.stop()).toBe(0);
  });

  it('an adopted session masks what its container received, though the file was rotated meanwhile', async () => {
    const dir = makeTempDir('agentd-rel-rotate-');
    const path = join(dir, 'token');
    const old = `rot-old-value-${tag}`;
    const rotated = `rot-new-value-${tag}`;
    writeFileSync(path, `${old}\n`, { mode: 0o600 });
    const command = [
      'echo "A:$ROT"',
      `git ls-remote git://127.0.0.1:${gate.port}/gate.git >/dev/null 2>&1`,
      'echo "B:$ROT"',
      'printf %s "$ROT" | sha256sum',
    ].join('; ');
    const d = tracked(
      await startDaemon(
        {
          agents: [
            agent('rotor', git.url(), ['sh', '-c', command], {
              credentials: [{ name: 'ROT', source: `file:${path}` }],
            }),
          ],
        },
        { args: TRACE },
      ),
    );
    const id = (await d.cli(['trigger', 'rotor', '--detach'])).stdout.trim();
    await gate.waitFor(1);
    await crash(d);
    await killOrphans(d);
    figures.faultsInjected++;
    writeFileSync(path, `${rotated}\n`);

    const next = tracked(launchDaemon(d.files, { args: TRACE }));
    await next.ready();
    await next.waitForLog((l) => l.event === 'session.adopted' && l.session === id);
    // The values are read back from the running container: the command is held until they are, or
    // it could end first and leave nothing to read them from.
    const masking = await next.waitForLog((l) => l.event === 'session.masking' && l.session === id);
    expect(masking).toMatchObject({ level: 30, values: 1 });
    const follower = next.spawnCli(['logs', id, '--follow']);
    await follower.waitForStdout(/A:\*{8}/);
    gate.open();
    expect((await next.waitForOutcome(id)).outcome).toBe('succeeded');
    const followed = await follower.result;
    expect(followed.stdout).toMatch(/B:\*{8}/);
    expect(followed.stdout).toContain(createHash('sha256').update(old).digest('hex'));
    const values = [Buffer.from(old)];
    expectNoClear('the follower', followed.stdout, values);
    expectNoClear(
      'the log file',
      readFileSync(join(d.files.stateDir, 'sessions', `${id}.log`), 'utf8'),
      values,
    );
    expectNoClear("the crashed daemon's log", d.stderr(), values);
    expectNoClear("the daemon's log", next.stderr(), values);
    figures.sessionsRecovered++;
    figures.sessions++;
    expect(await next.stop()).toBe(0);
  });

  it('a session whose container exited while no daemon ran is masked with the copies Podman kept, not withheld', async () => {
    const secret = `exited-secret-${tag}`;
    const command = [
      'echo "A:$EXS"',
      `git ls-remote git://127.0.0.1:${gate.port}/gate.git >/dev/null 2>&1`,
      'echo "B:$EXS"',
      'echo "plain after"',
    ].join('; ');
    const env = { AGENTD_REL_EXS: secret };
    const d = tracked(
      await startDaemon(
        {
          agents: [
            agent('exiter', git.url(), ['sh', '-c', command], {
              credentials: [{ name: 'EXS', source: 'env:AGENTD_REL_EXS' }],
            }),
          ],
        },
        { env, args: TRACE },
      ),
    );
    const id = (await d.cli(['trigger', 'exiter', '--detach'])).stdout.trim();
    await gate.waitFor(1);
    await crash(d);
    await killOrphans(d);
    figures.faultsInjected++;
    // The command ends, and its container exits, while no daemon runs: nothing can exec into it now.
    gate.open();
    const state = () =>
      execFileSync(
        'podman',
        ['ps', '-a', '--filter', `label=io.agentd.session=${id}`, '--format', '{{.State}}'],
        {
          encoding: 'utf8',
        },
      ).trim();
    await waitUntil(
      () => /^exited/i.test(state()),
      () => `the container exited (it is ${state()})`,
    );

    const next = tracked(launchDaemon(d.files, { env, args: TRACE }));
    await next.ready();
    const masking = await next.waitForLog((l) => l.event === 'session.masking' && l.session === id);
    expect(masking).toMatchObject({ level: 30, values: 1 });
    expect((await next.waitForOutcome(id)).outcome).toBe('succeeded');
    const logs = await next.cli(['logs', id]);
    const log = readFileSync(join(d.files.stateDir, 'sessions', `${id}.log`), 'utf8');
    for (const [where, text] of [
      ['agentd logs', logs.stdout],
      ['log file', log],
    ] as const) {
      expect(text, where).toMatch(/B:\*{8}/);
      expect(text, where).toContain('plain after');
      expect(text, where).not.toMatch(/withheld/);
      expectNoClear(where, text, [Buffer.from(secret)]);
    }
    expectNoClear("the crashed daemon's log", d.stderr(), [Buffer.from(secret)]);
    expectNoClear("the daemon's log", next.stderr(), [Buffer.from(secret)]);
    figures.sessionsRecovered++;
    figures.sessions++;
    expect(await next.stop()).toBe(0);
  });

  it('an adopted session whose values cannot be read back has its output withheld, and says why', async () => {
    const fake = new FakePodman();
    const secret = `withheld-secret-${tag}`;
    const command = [
      'echo "before:$SEC"',
      `git ls-remote git://127.0.0.1:${gate.port}/gate.git >/dev/null 2>&1`,
      'echo "after:$SEC"',
      'echo "plain after"',
    ].join('; ');
    const env = { PATH: fake.path, AGENTD_REL_SEC: secret };
    const d = tracked(
      await startDaemon(
        {
          agents: [
            agent('quiet', git.url(), ['sh', '-c', command], {
              credentials: [{ name: 'SEC', source: 'env:AGENTD_REL_SEC' }],
            }),
          ],
        },
        { env, args: TRACE },
      ),
    );
    const id = (await d.cli(['trigger', 'quiet', '--detach'])).stdout.trim();
    await gate.waitFor(1);
    // The log is written in batches: the crash comes once the first line is in it (a line not yet
    // written when a daemon dies is replayed from the container's own log instead).
    const logFile = join(d.files.stateDir, 'sessions', `${id}.log`);
    await waitUntil(
      () => existsSync(logFile) && readFileSync(logFile, 'utf8').includes(' out before:'),
      () => 'the first line in the log',
    );
    await crash(d);
    await killOrphans(d);
    fake.setRules([{ subcommand: 'exec', call: '*', action: 'fail' }]);
    figures.faultsInjected++;

    const next = tracked(launchDaemon(d.files, { env, args: TRACE }));
    await next.ready();
    const follower = next.spawnCli(['logs', id, '--follow']);
    await follower.waitForStdout(/output withheld/);
    // The daemon's log says so too, as a warning naming the failed read.
    const withheld = await next.waitForLog((l) => l.event === 'session.output_withheld' && l.session === id);
    expect(withheld).toMatchObject({ level: 40, err: { code: 'PODMAN_FAILED' } });
    expect(JSON.stringify(withheld)).toMatch(/injected failure of podman exec/);
    gate.open();
    expect((await next.waitForOutcome(id)).outcome).toBe('succeeded');
    const followed = await follower.result;
    const log = readFileSync(join(d.files.stateDir, 'sessions', `${id}.log`), 'utf8');
    for (const [where, text] of [
      ['follower', followed.stdout],
      ['log file', log],
    ] as const) {
      expect(text, where).toMatch(
        /\[agentd: output withheld: this session was adopted after a daemon restart, and the credential values its container was given could not be read back from it to mask its output \(.*injected failure of podman exec/,
      );
      expect(text, where).toMatch(/\[agentd: 2 line\(s\) of output withheld\]/);
      expect(text, where).not.toMatch(/after:|plain after/);
      expectNoClear(where, text, [Buffer.from(secret)]);
    }
    expectNoClear("the crashed daemon's log", d.stderr(), [Buffer.from(secret)]);
    expectNoClear("the daemon's log", next.stderr(), [Buffer.from(secret)]);
    figures.sessionsRecovered++;
    figures.sessions++;
    expect(await next.stop()).toBe(0);
  });
});
