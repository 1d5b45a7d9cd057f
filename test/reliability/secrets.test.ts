/**
 * Secret hygiene: credential values never appear on any process's command line (scanned from
 * /proc/*\/cmdline throughout), in `podman inspect` of the running container, in the daemon's logs, in
 * session records or in error messages, in any form a leak takes (`secretForms`: plain, base64,
 * base64url, URL-encoded, hex, a JSON byte array); and when the agent prints them (plain, base64,
 * URL-encoded) the streamed output and the session log show them masked.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { type Gate, startGate } from '../helpers/gate.js';
import {
  type GitServer,
  type HttpGitServer,
  startGitServer,
  startHttpGitServer,
} from '../helpers/git-server.js';
import { makeTempDir } from '../helpers/resources.js';
import { secretForms } from '../helpers/secret-forms.js';
import { afterEachTest, agent, inspectContainer, recordFigures, sleep, waitUntil } from './harness.js';

let git: GitServer | undefined;
let http: HttpGitServer | undefined;
let gate: Gate | undefined;
const daemons: TestDaemon[] = [];
const figures: Record<string, number> & { objectsLeftBehind: number } = { objectsLeftBehind: 0 };

afterAll(async () => {
  await git?.stop();
  await http?.stop();
  await gate?.close();
  await recordFigures('secrets', figures);
});
afterEach(() => afterEachTest(figures, daemons));

interface Hit {
  /** The needle found. */
  needle: string;
  /** Where: the process and (the start of) its command line. */
  where: string;
}

/** Reads every process's argv over and over until stopped; returns what it saw. */
function scanCommandLines(wanted: string[]) {
  const needles = [...new Set(wanted)];
  let running = true;
  let scans = 0;
  let processes = 0;
  const hits: Hit[] = [];
  const loop = (async () => {
    while (running) {
      for (const entry of readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        let argv: string;
        try {
          argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
        } catch {
          continue;
        }
        processes++;
        for (const needle of needles) {
          if (argv.includes(needle))
            hits.push({ needle, where: `pid ${entry}: ${argv.replaceAll('\0', ' ').slice(0, 300)}` });
        }
      }
      scans++;
      await sleep(20);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { scans, processes, hits };
    },
  };
}

describe('secret hygiene', () => {
  it('keeps credential values off argv, out of inspect, logs and records, and masks them in output', async () => {
    git = await startGitServer();
    const held = await startGate();
    gate = held;
    const hex = randomBytes(8).toString('hex');
    // Characters that base64 and URL encoding both change.
    const values = {
      env: `s3cr3t/v@lue+${hex}=z`,
      file: `file cred?&${hex}`,
      repo: `repo-token-${hex}`,
    };
    const dir = makeTempDir('agentd-rel-secrets-');
    const credFile = join(dir, 'file-cred');
    writeFileSync(credFile, `${values.file}\n`, { mode: 0o600 });
    const hugeFile = join(dir, 'huge-cred');
    const huge = `huge-${hex}-${'h'.repeat(600_000)}`;
    writeFileSync(hugeFile, huge, { mode: 0o600 });
    const urlEncode = "sed -e 's/%/%25/g' -e 's|/|%2F|g' -e 's/@/%40/g' -e 's/+/%2B/g' -e 's/=/%3D/g'";
    const script = [
      'echo "plain: $ENV_TOKEN and $FILE_TOKEN"',
      'printf "base64: "; printf %s "$ENV_TOKEN" | base64 -w0; echo',
      `printf "url: "; printf %s "$ENV_TOKEN" | ${urlEncode}; echo`,
      'echo "file base64: $(printf %s "$FILE_TOKEN" | base64 -w0)"',
      // The window in which the test inspects the running container: it waits at the gate until then.
      `git ls-remote "$AGENTD_REPO_URL" >/dev/null; git ls-remote git://127.0.0.1:${held.port}/gate.git >/dev/null 2>&1`,
      'echo done',
    ].join('\n');
    const credentials = [
      { name: 'ENV_TOKEN', source: 'env:AGENTD_REL_SECRET_ENV' },
      { name: 'FILE_TOKEN', source: `file:${credFile}` },
    ];
    // The repo token goes only to an http(s) origin: these two clone over git's smart HTTP.
    http = await startHttpGitServer();
    const d = await startDaemon(
      {
        agents: [
          agent('leaky', http.url(), ['sh', '-c', script], {
            credentials,
            repo_token: 'env:AGENTD_REL_SECRET_REPO',
            allow_insecure_http: true,
          }),
          agent('broken', http.url('missing.git'), ['true'], {
            credentials,
            repo_token: 'env:AGENTD_REL_SECRET_REPO',
            allow_insecure_http: true,
          }),
          agent('huge', git.url(), ['true'], {
            credentials: [...credentials, { name: 'HUGE_TOKEN', source: `file:${hugeFile}` }],
          }),
        ],
      },
      // At trace, the lowest level: a value in a debug or trace line is a leak too (an operator turns them on).
      {
        env: { AGENTD_REL_SECRET_ENV: values.env, AGENTD_REL_SECRET_REPO: values.repo },
        args: ['--log-level', 'trace'],
      },
    );
    daemons.push(d);
    // The huge value by its start: `huge-` and 16 hex digits are 21 bytes, a multiple of 3, so each form
    // of the start (base64 and hex included) is also the start of that form of the whole value.
    const needles = [...Object.values(values), `huge-${hex}`].flatMap(secretForms);
    // A canary on a command line, in every form, proves the scanner sees each form it looks for.
    const canary = `canary-${hex}`;
    const canaryForms = secretForms(canary);
    const scanner = scanCommandLines([...needles, ...canaryForms]);
    await Promise.all(canaryForms.map((form) => execa('/bin/sh', ['-c', 'sleep 0.3', 'sh', form])));

    const run = d.spawnCli(['trigger', 'leaky']);
    const [, id = ''] = await run.waitForStdout(/session ([0-9a-f]{16}) accepted/);
    let container: Awaited<ReturnType<typeof inspectContainer>>;
    try {
      await held.waitFor(1);
      const name = await waitUntil(
        () => d.record(id)?.container,
        () => 'the container name',
      );
      container = await inspectContainer(name);
    } finally {
      held.open();
    }
    expect(container?.State, 'inspected while it runs').toMatchObject({ Running: true });
    const inspected = JSON.stringify(container);
    const result = await run.result;
    const scanned = await scanner.stop();
    const canarySeen = new Set(scanned.hits.map((hit) => hit.needle));
    expect(
      canaryForms.filter((form) => !canarySeen.has(form)),
      'canary forms the scanner did not see',
    ).toEqual([]);
    const argv = {
      ...scanned,
      hits: scanned.hits.filter((hit) => !canaryForms.includes(hit.needle)).map((hit) => hit.where),
    };
    expect(result.code, result.stderr).toBe(0);

    // The agent printed every form; each arrived masked.
    const lines = result.stdout.split('\n');
    expect(lines).toContain('plain: ******** and ********');
    expect(lines).toContain('base64: ********');
    expect(lines).toContain('url: ********');
    expect(lines).toContain('file base64: ********');
    const logs = await d.cli(['logs', id]);
    expect(logs.stdout).toBe(
      [
        'plain: ******** and ********',
        'base64: ********',
        'url: ********',
        'file base64: ********',
        'done',
        '',
      ].join('\n'),
    );

    // Sessions that fail: the clone (with a repo token), and a credential too large for Podman.
    const broken = await d.cli(['trigger', 'broken', '--json']);
    expect(JSON.parse(broken.stdout)).toMatchObject({ outcome: 'failed' });
    expect(JSON.parse(broken.stdout).message).toMatch(/git clone of .*missing\.git failed/);
    const tooLarge = await d.cli(['trigger', 'huge', '--json']);
    expect(JSON.parse(tooLarge.stdout)).toMatchObject({ outcome: 'error' });
    expect(JSON.parse(tooLarge.stdout).message).toContain(
      `credential HUGE_TOKEN: the value of file:${hugeFile} is ${huge.length} bytes, more than an environment variable can hold`,
    );

    // The token went with the clones, as a header only.
    expect(http.requests.map((r) => r.authorization)).toContain(`Bearer ${values.repo}`);
    const status = await d.cli(['status', '--json']);
    expect(await d.stop()).toBe(0);
    const places: [string, string][] = [
      ['argv of any process', argv.hits.join('\n')],
      ['podman inspect of the running container', inspected],
      ['agentd trigger output', result.stdout + result.stderr],
      ['agentd logs', logs.stdout + logs.stderr],
      ['error messages', broken.stdout + broken.stderr + tooLarge.stdout + tooLarge.stderr],
      ['agentd status', status.stdout],
      ['daemon log', d.stderr() + d.stdout()],
      ['state dir (records, logs)', d.stateDirText()],
    ];
    for (const [place, text] of places) {
      for (const needle of needles) expect(text.includes(needle), `${place} holds ${needle}`).toBe(false);
    }
    expect(argv.hits).toEqual([]);
    expect(argv.scans).toBeGreaterThan(20);
    Object.assign(figures, {
      sessions: 3,
      argvScans: argv.scans,
      argvProcessesRead: argv.processes,
      secretLeaks: argv.hits.length,
    });
  });

  it("keeps the daemon's proxy variables (and a password in them) out of every container", async () => {
    git ??= await startGitServer();
    const password = `proxy-pw-${randomBytes(8).toString('hex')}`;
    const proxy = `http://agentd:${password}@127.0.0.1:9`;
    // An agent with no credentials at all: what its environment holds, it prints. git:// ignores proxies.
    const d = await startDaemon(
      { agents: [agent('nosy', git.url(), ['sh', '-c', 'env; echo end'])] },
      {
        env: {
          HTTPS_PROXY: proxy,
          https_proxy: proxy,
          HTTP_PROXY: proxy,
          http_proxy: proxy,
          ALL_PROXY: proxy,
        },
      },
    );
    daemons.push(d);
    const run = await d.cli(['trigger', 'nosy']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('end');
    expect(run.stdout).not.toMatch(/proxy=/i);
    expect(run.stdout).not.toContain(password);
  });
});
