import { createHash } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PodmanClient } from '../../src/adapters/podman.js';
import { MASK } from '../../src/runner/mask.js';
import { instanceSecretPrefix } from '../../src/runner/names.js';
import { isSkipped, readSessionLog } from '../../src/runner/session-log.js';
import type { Phase, RunResult, SessionInvocation, SessionSpec } from '../../src/sessions/types.js';
import { type Gate, startGate } from '../helpers/gate.js';
import {
  type GitServer,
  type HttpGitServer,
  startGitServer,
  startHttpGitServer,
} from '../helpers/git-server.js';
import { randomSessionId, testInstanceId } from '../helpers/ids.js';
import { listAgentdContainers, listSecrets, TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll, makeTempDir, track } from '../helpers/resources.js';
import { type RunEvent, TestRunner } from '../helpers/runner.js';

const instanceId = testInstanceId();
/** Every container and secret this file's runner makes starts with this. */
const prefix = instanceSecretPrefix(instanceId);
const AGENT = 'e2e-agent';

let git: GitServer;
let gate: Gate;
let hanging: { url: string; close: () => Promise<void> };
/** Every podman argv any runner of this file ran. */
const calls: string[][] = [];
const podman = new PodmanClient({ onCall: (argv) => calls.push([...argv]) });
const warnings: string[] = [];

function makeRunner(client: PodmanClient = podman): TestRunner {
  return new TestRunner({
    podman: client,
    instanceId,
    stopGraceMs: 1000,
    logMaxBytes: 1_000_000,
    warn: (message, error) => warnings.push(`${message}: ${String(error)}`),
  });
}

interface Session {
  result: RunResult;
  events: { at: number; event: RunEvent }[];
  lines: string[];
  phases: Phase[];
  container: string | undefined;
  logFile: string;
  log: () => string;
  elapsedMs: number;
  finishedAt: number;
}

interface SessionOptions {
  spec?: Partial<SessionSpec>;
  invocation?: Partial<SessionInvocation>;
  signal?: AbortSignal;
  runner?: TestRunner;
  onEvent?: (event: RunEvent) => void;
}

async function runSession(options: SessionOptions = {}): Promise<Session> {
  const spec: SessionSpec = {
    agent: AGENT,
    image: TEST_IMAGE,
    command: ['true'],
    credentials: [],
    env: {},
    network: 'host',
    ...options.spec,
  };
  const invocation: SessionInvocation = {
    sessionId: randomSessionId(),
    repoUrl: git.url(),
    ...options.invocation,
  };
  const logFile = join(makeTempDir('agentd-e2e-log-'), 'session.log');
  const events: Session['events'] = [];
  let container: string | undefined;
  const started = performance.now();
  const result = await (options.runner ?? makeRunner()).run(spec, invocation, {
    signal: options.signal ?? new AbortController().signal,
    logFile,
    onEvent: (event) => {
      events.push({ at: performance.now(), event });
      if (event.type === 'container') container = track.container(event.name);
      options.onEvent?.(event);
    },
  });
  const finishedAt = performance.now();
  return {
    result,
    events,
    lines: events.flatMap(({ event }) => (event.type === 'output' ? [event.line] : [])),
    phases: events.flatMap(({ event }) => (event.type === 'phase' ? [event.phase] : [])),
    container,
    logFile,
    // The text of each line in the log (the file also holds each line's seq, time and stream).
    log: () =>
      readSessionLog(logFile)
        .map((entry) => (isSkipped(entry) ? '' : `${entry.text}\n`))
        .join(''),
    elapsedMs: finishedAt - started,
    finishedAt,
  };
}

/** A TCP server that accepts connections and never answers: a clone from it hangs. */
async function startHangingServer(): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `git://127.0.0.1:${port}/x.git`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** The forms of a value the masker hides: plain, base64 (with and without padding), URL-encoded. */
function forms(value: string): string[] {
  const b64 = Buffer.from(value).toString('base64');
  return [value, b64, b64.replace(/=+$/, ''), encodeURIComponent(value)];
}

/** Every host process's argv, as NUL-separated strings (anything on argv is readable here). */
function hostCmdlines(): string[] {
  const out: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      out.push(readFileSync(`/proc/${entry}/cmdline`, 'latin1'));
    } catch {
      // The process exited between readdir and read.
    }
  }
  return out;
}

beforeAll(async () => {
  [git, gate, hanging] = await Promise.all([startGitServer(), startGate(), startHangingServer()]);
});

afterAll(async () => {
  await Promise.allSettled([git?.stop(), gate?.close(), hanging?.close()]);
});

beforeEach(() => {
  // Each test's warnings are its own: a retry in one must not fail the next.
  warnings.length = 0;
});

afterEach(async () => {
  // Read what a user would see before cleaning up, so a leak fails the test instead of being hidden.
  const containers = await listAgentdContainers(prefix);
  const secrets = await listSecrets(prefix);
  for (const c of containers) track.container(c.name);
  for (const s of secrets) track.secret(s);
  await cleanupAll();
  expect(
    containers.map((c) => `${c.name} (${c.state})`),
    'containers left behind',
  ).toEqual([]);
  expect(secrets, 'secrets left behind').toEqual([]);
});

describe('the runner machine against real Podman', () => {
  it('runs a command to success, streaming its output in order through the phases', async () => {
    const session = await runSession({
      spec: {
        // stdout and stderr are two pipes: the pause keeps the order of the lines on the two.
        command: [
          'sh',
          '-c',
          'for i in 1 2 3 4 5; do echo line$i; done; sleep 0.3; echo err >&2; sleep 1; echo last',
        ],
      },
    });
    expect(session.result).toMatchObject({ outcome: 'succeeded', exitCode: 0, phase: 'running' });
    expect(session.result.message).toBeUndefined();
    expect(session.lines).toEqual(['line1', 'line2', 'line3', 'line4', 'line5', 'err', 'last']);
    expect(session.phases).toEqual(['creating', 'cloning', 'running', 'tearing_down']);
    expect(session.container?.startsWith(prefix)).toBe(true);
    expect(Object.keys(session.result.timings).sort()).toEqual([
      'cloning',
      'creating',
      'running',
      'tearing_down',
    ]);
    // Streamed as produced: line5 arrived while the command still had a second to go.
    const line5 = session.events.find(({ event }) => event.type === 'output' && event.line === 'line5');
    expect(session.finishedAt - (line5?.at ?? session.finishedAt)).toBeGreaterThan(700);
    // Setup marker lines are the runner's business, not output.
    expect(session.lines.join('\n')).not.toContain('@@agentd-');
    expect(session.log()).toBe('line1\nline2\nline3\nline4\nline5\nerr\nlast\n');
    // The command's stderr is told apart from its stdout.
    const streams = session.events.flatMap(({ event }) =>
      event.type === 'output' ? [`${event.stream}:${event.line}`] : [],
    );
    expect(streams).toContain('stderr:err');
    expect(streams).toContain('stdout:last');
  });

  it('reports a non-zero exit as failed with its code', async () => {
    const { result } = await runSession({ spec: { command: ['sh', '-c', 'echo bye; exit 7'] } });
    expect(result).toMatchObject({ outcome: 'failed', exitCode: 7, phase: 'running' });
    expect(result.message).toContain('code 7');
  });

  it('reports a missing command as failed with 127', async () => {
    const { result, lines } = await runSession({ spec: { command: ['no-such-command-xyz', '--flag'] } });
    expect(result).toMatchObject({ outcome: 'failed', exitCode: 127, phase: 'running' });
    expect(result.message).toMatch(/command not found: no-such-command-xyz/);
    expect(lines.join('\n')).toContain('no-such-command-xyz');
  });

  it('says a 127 the command exited with itself is its own, not a missing command', async () => {
    const { result } = await runSession({
      spec: { command: ['sh', '-c', 'set -e; no-such-tool-xyz --work'] },
    });
    expect(result).toMatchObject({ outcome: 'failed', kind: 'not_found', exitCode: 127, phase: 'running' });
    expect(result.message).toBe(
      'command sh was started and exited with code 127: its interpreter or something it ran was not found',
    );
  });

  it('reports a non-executable file as failed with 126', async () => {
    // README.md is a file of the cloned repository, which is the command's working directory.
    const { result } = await runSession({ spec: { command: ['./README.md'] } });
    expect(result).toMatchObject({ outcome: 'failed', exitCode: 126, phase: 'running' });
    expect(result.message).toMatch(/cannot be executed/);
  });

  it('tells a podman failure at start (exit 125) apart from the command failing', async () => {
    const real = (await execa('sh', ['-c', 'command -v podman'])).stdout.trim();
    const dir = makeTempDir('agentd-e2e-fakepodman-');
    const fake = join(dir, 'podman');
    writeFileSync(
      fake,
      `#!/bin/sh\nif [ "$1" = start ] || [ "$1" = run ]; then\n  echo 'Error: OCI runtime error: crun: setrlimit RLIMIT_NOFILE: Operation not permitted' >&2\n  exit 125\nfi\nexec ${real} "$@"\n`,
    );
    chmodSync(fake, 0o755);
    const client = new PodmanClient({ bin: fake, onCall: (argv) => calls.push([...argv]) });
    const session = await runSession({ runner: makeRunner(client), spec: { command: ['true'] } });
    expect(session.result.outcome).toBe('error');
    expect(session.result.exitCode).toBeUndefined();
    // The operator is told the cause and the fix, not just a raw OCI error.
    expect(session.result.message).toMatch(/resource limits/);
    expect(session.result.message).toContain('CONTAINERS_CONF');
    expect(session.phases).toEqual(['creating', 'tearing_down']);
  });

  it('reports a missing image as an error naming how to build it, within seconds', async () => {
    const session = await runSession({ spec: { image: 'localhost/agentd-no-such-image:e2e' } });
    expect(session.result).toMatchObject({ outcome: 'error', phase: 'creating' });
    expect(session.result.message).toContain('localhost/agentd-no-such-image:e2e');
    expect(session.result.message).toMatch(/not available/);
    expect(session.result.message).toContain('build');
    // No pull, no retries: a loaded machine's podman calls, not a registry's timeouts.
    expect(session.elapsedMs).toBeLessThan(15_000);
    expect(session.container).toBeUndefined();
  });

  it('times out a command that runs too long', async () => {
    // Long enough for the container and its clone to be up first on a loaded CI machine (one took
    // over 2 s there, and the session timed out while `creating`), short against the 30 s command.
    const session = await runSession({ spec: { command: ['sleep', '30'], timeoutMs: 6000 } });
    expect(session.result).toMatchObject({ outcome: 'timed_out', phase: 'running' });
    expect(session.result.message).toMatch(/timeout/);
    expect(session.elapsedMs).toBeGreaterThan(5900);
    expect(session.elapsedMs).toBeLessThan(15_000);
  });

  it('times out a clone that hangs', async () => {
    // The deadline runs from the runner's start: long enough for the container to be up and the
    // clone under way first on a loaded CI machine, so it is the hanging clone that it ends.
    const timeoutMs = 8000;
    const session = await runSession({
      spec: { command: ['true'], timeoutMs },
      invocation: { repoUrl: hanging.url },
    });
    expect(session.result).toMatchObject({ outcome: 'timed_out', phase: 'cloning' });
    expect(session.phases).toEqual(['creating', 'cloning', 'tearing_down']);
    expect(session.elapsedMs).toBeGreaterThan(timeoutMs - 100);
    expect(session.elapsedMs).toBeLessThan(timeoutMs + 10_000);
  });

  it('cancels during the clone', async () => {
    const controller = new AbortController();
    const session = await runSession({
      invocation: { repoUrl: hanging.url },
      signal: controller.signal,
      onEvent: (event) => {
        // Give git a moment to connect and block before cancelling.
        if (event.type === 'phase' && event.phase === 'cloning') setTimeout(() => controller.abort(), 300);
      },
    });
    expect(session.result).toMatchObject({ outcome: 'cancelled', phase: 'cloning' });
    // The clone would hang for ever: anything bounded is the cancel's doing (podman is slow under load).
    expect(session.elapsedMs).toBeLessThan(30_000);
  });

  it('cancels during the command', async () => {
    const controller = new AbortController();
    const session = await runSession({
      spec: { command: ['sh', '-c', 'echo ready; sleep 30'] },
      signal: controller.signal,
      onEvent: (event) => {
        if (event.type === 'output' && event.line === 'ready') controller.abort();
      },
    });
    expect(session.result).toMatchObject({ outcome: 'cancelled', phase: 'running' });
    expect(session.lines).toEqual(['ready']);
    // Well short of the command's 30 s (podman is slow under load).
    expect(session.elapsedMs).toBeLessThan(20_000);
  });

  it('leaves no secret or container behind when cancelled while creating them', async () => {
    // Cancelling kills podman mid-call: it may have made the object anyway. Various moments hit
    // `secret create` and `create` in flight; afterEach checks nothing is left.
    for (const delayMs of [0, 20, 40, 60, 90, 120]) {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), delayMs);
      const { result } = await runSession({
        spec: { credentials: [{ name: 'A', value: Buffer.from('value-a-1234') }] },
        signal: controller.signal,
      });
      expect(result.outcome, `cancelled after ${delayMs} ms`).toBe('cancelled');
    }
    // A `podman run` cut short while it creates the container can leave the container's shm mount busy
    // for a moment after it exited (Podman 4.3 unmounts it in its own cleanup process): the first `rm`
    // then fails with EBUSY and teardown's second try removes the container, as it is there for.
    // Nothing else may go wrong, and afterEach checks that nothing is left.
    const podmanRace = /userdata\/shm: device or resource busy/;
    expect(warnings.filter((warning) => !podmanRace.test(warning))).toEqual([]);
  });

  it('reports a clone of a wrong repository path as failed while cloning, with git saying why', async () => {
    const url = git.url('no-such-repo.git');
    const session = await runSession({ invocation: { repoUrl: url } });
    expect(session.result).toMatchObject({ outcome: 'failed', phase: 'cloning' });
    expect(session.result.exitCode).not.toBe(0);
    expect(session.result.message).toContain(url);
    expect(session.result.message).toMatch(/fatal: .*no such repository/);
    expect(session.phases).toEqual(['creating', 'cloning', 'tearing_down']);
  });

  it('hands credentials to the command without exposing them anywhere else', async () => {
    const value = `k/${randomSessionId()}+x=y&z`;
    const valueForms = forms(value);
    const leaks = (text: string) => valueForms.filter((form) => text.includes(form));
    const callsBefore = calls.length;

    // The command waits at the gate until the test has looked at the running session.
    gate.hold();
    const gateUrl = `git://127.0.0.1:${gate.port}/gate.git`;
    const gateCmdline = `git\0ls-remote\0${gateUrl}\0`;
    // Scan every host process's argv for the whole session.
    let scanning = true;
    let scans = 0;
    let sawSessionCommand = false;
    const cmdlineLeaks: string[] = [];
    const scanner = (async () => {
      while (scanning) {
        for (const cmdline of hostCmdlines()) {
          if (leaks(cmdline).length > 0) cmdlineLeaks.push(cmdline.replaceAll('\0', ' '));
          if (cmdline === gateCmdline) sawSessionCommand = true;
        }
        scans++;
        await new Promise((r) => setTimeout(r, 25));
      }
    })();

    let inspected = '';
    let container = '';
    let probe: Promise<void> | undefined;
    const script = [
      'printf "%s" "$API_KEY" | sha256sum | cut -d" " -f1',
      'echo "plain:$API_KEY"',
      'echo "b64:$(printf %s "$API_KEY" | base64 -w0)"',
      `echo "url:$(printf %s "$API_KEY" | sed -e 's,/,%2F,g' -e 's,+,%2B,g' -e 's,=,%3D,g' -e 's,&,%26,g')"`,
      'cat /run/secrets/agentd/bundle.0; echo "cat-exit:$?"',
      // Where root leaves the output archive for agentd (mounted from the daemon's work dir).
      'ls /run/agentd/out; echo "archive-dir-exit:$?"',
      'echo ready',
      // Blocks until the gate opens (which ends it with an error: the command ends with 0 all the same).
      `git ls-remote ${gateUrl} >/dev/null 2>&1 || :`,
    ].join('\n');
    const session = await runSession({
      spec: { command: ['sh', '-c', script], credentials: [{ name: 'API_KEY', value: Buffer.from(value) }] },
      onEvent: (event) => {
        if (event.type === 'container') container = event.name;
        if (event.type === 'output' && event.line === 'ready') {
          // While the command waits at the gate: inspect it, see its secret objects gone (removed in
          // the background once it started), and let the argv scan see it; then let it finish.
          probe = (async () => {
            await gate.waitFor(1);
            inspected = (await execa('podman', ['inspect', container])).stdout;
            await expect
              .poll(() => listSecrets(prefix), {
                timeout: 10_000,
                message: 'the secret objects are gone while the command still runs',
              })
              .toEqual([]);
            await expect
              .poll(() => sawSessionCommand, {
                timeout: 10_000,
                message: 'the argv scan saw the session command running',
              })
              .toBe(true);
          })().finally(() => gate.open());
        }
      },
    });
    scanning = false;
    await scanner;
    await probe;

    expect(session.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
    // stdout and stderr are read apart: an error line (stderr) may come before the hash (stdout).
    const hash = session.lines.find((line) => /^[0-9a-f]{64}$/.test(line));
    const rest = session.lines.filter((line) => line !== hash);
    // The command saw exactly the value (its hash proves it without printing it).
    expect(hash).toBe(sha256(value));
    expect(rest).toContain(`plain:${MASK}`);
    expect(rest).toContain(`b64:${MASK}`);
    expect(rest).toContain(`url:${MASK}`);
    // The agent's user cannot read the root-only secret file.
    expect(rest.join('\n')).toMatch(/cat: \/run\/secrets\/agentd\/bundle.0: Permission denied/);
    expect(rest).toContain('cat-exit:1');
    // Not even reached: its parent is root-only (without that, the directory itself refused the listing).
    expect(rest.join('\n')).toMatch(/ls: cannot access '\/run\/agentd\/out': Permission denied/);
    expect(rest).toContain('archive-dir-exit:2');
    expect(leaks(session.lines.join('\n'))).toEqual([]);
    const log = session.log();
    expect(log).toContain(`plain:${MASK}`);
    expect(leaks(log)).toEqual([]);

    // Never on a podman command line, never on any host process's argv, never in podman inspect.
    const argvs = calls.slice(callsBefore).map((argv) => argv.join(' '));
    expect(argvs.some((argv) => argv.startsWith('secret create'))).toBe(true);
    expect(argvs.filter((argv) => leaks(argv).length > 0)).toEqual([]);
    expect(scans).toBeGreaterThan(5);
    expect(sawSessionCommand, 'the argv scan saw the session command running').toBe(true);
    expect(cmdlineLeaks).toEqual([]);
    expect(inspected).toContain(container);
    expect(leaks(inspected)).toEqual([]);
    // The secret objects were gone while the command was still running (the probe waited for that).
    await expect(probe, 'the probe of the running session').resolves.toBeUndefined();
    expect(warnings).toEqual([]);
  });

  it('sets an empty credential as an empty variable', async () => {
    const { result, lines } = await runSession({
      spec: {
        command: ['sh', '-c', 'if env | grep -qx EMPTY_CRED=; then echo set-empty; else echo bad; fi'],
        credentials: [{ name: 'EMPTY_CRED', value: Buffer.alloc(0) }],
      },
    });
    expect(result.outcome).toBe('succeeded');
    expect(lines).toEqual(['set-empty']);
  });

  describe('with a repository served over HTTP that demands a token', () => {
    let http: HttpGitServer;
    const token = `tok-${randomSessionId()}${randomSessionId()}`;

    beforeAll(async () => {
      http = await startHttpGitServer({ token });
    });
    afterAll(async () => {
      await http?.stop();
    });

    it('clones with the repo token, which the command cannot see', async () => {
      const callsBefore = calls.length;
      http.requests.length = 0;
      const session = await runSession({
        spec: {
          command: [
            'sh',
            '-c',
            'echo "files: $(ls | tr "\\n" " ")"; env | sort; echo "--- git config"; git config --list; echo "--- end"',
          ],
        },
        invocation: { repoUrl: http.url(), repoToken: Buffer.from(token) },
      });
      expect(session.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      expect(session.lines[0]).toBe('files: README.md hello.txt src ');
      const output = session.lines.join('\n');
      // The masker would have replaced the token: no MASK means it never reached the output at all.
      expect(output).not.toContain(MASK);
      expect(forms(token).filter((form) => output.includes(form))).toEqual([]);
      expect(output).not.toMatch(/GIT_CONFIG_|extraheader|Authorization|Bearer/i);
      expect(session.lines).toContain('--- git config');
      expect(http.requests.length).toBeGreaterThan(0);
      expect(http.requests.every((r) => r.authorized)).toBe(true);
      expect(http.requests.map((r) => r.path)).toContain('/repo.git/info/refs');
      const argvs = calls.slice(callsBefore).map((argv) => argv.join(' '));
      expect(argvs.filter((argv) => argv.includes(token))).toEqual([]);
    });

    it('fails the clone without the token', async () => {
      http.requests.length = 0;
      const session = await runSession({ invocation: { repoUrl: http.url() } });
      expect(session.result).toMatchObject({ outcome: 'failed', phase: 'cloning' });
      expect(http.requests.length).toBeGreaterThan(0);
      expect(http.requests.some((r) => r.authorized)).toBe(false);
    });
  });

  it('sets AGENTD_WORK_UNIT when given and runs unprivileged in a clone it owns', async () => {
    const { result, lines } = await runSession({
      spec: {
        command: [
          'sh',
          '-c',
          'env | grep ^AGENTD_WORK_UNIT= || echo wu-unset; echo "uid=$(id -u)"; echo "owner=$(stat -c %U .)"; echo "home=$HOME"; echo "pwd=$(pwd)"; git log --oneline | wc -l',
        ],
      },
      invocation: { workUnit: 'WU-42' },
    });
    expect(result.outcome).toBe('succeeded');
    expect(lines[0]).toBe('AGENTD_WORK_UNIT=WU-42');
    expect(lines[1]).toMatch(/^uid=[1-9]\d*$/);
    expect(lines[2]).toBe(`owner=${AGENT}`);
    expect(lines[3]).toBe(`home=/home/${AGENT}`);
    expect(lines[4]).toBe(`pwd=/home/${AGENT}/repo`);
    expect(lines[5]).toBe('2');
  });

  it('leaves AGENTD_WORK_UNIT unset when none is given, even if the agent env sets it', async () => {
    const { result, lines } = await runSession({
      spec: {
        command: ['sh', '-c', 'env | grep ^AGENTD_WORK_UNIT= || echo wu-unset'],
        env: { AGENTD_WORK_UNIT: 'from-env' },
      },
    });
    expect(result.outcome).toBe('succeeded');
    expect(lines).toEqual(['wu-unset']);
  });

  it('runs two sessions of the same agent at once without collisions', async () => {
    const ids = [randomSessionId(), randomSessionId()];
    const command = ['sh', '-c', 'echo "id=$AGENTD_SESSION_ID"; echo mine > mine.txt; sleep 1; cat mine.txt'];
    const sessions = await Promise.all(
      ids.map((sessionId) => runSession({ spec: { command }, invocation: { sessionId } })),
    );
    for (const [i, session] of sessions.entries()) {
      expect(session.result).toMatchObject({ outcome: 'succeeded', exitCode: 0 });
      expect(session.lines).toEqual([`id=${ids[i]}`, 'mine']);
    }
    expect(sessions[0]?.container).not.toBe(sessions[1]?.container);
    expect(sessions[0]?.logFile).not.toBe(sessions[1]?.logFile);
    // They really overlapped in time.
    const [a, b] = sessions;
    if (a && b)
      expect(Math.abs(a.finishedAt - b.finishedAt)).toBeLessThan(Math.min(a.elapsedMs, b.elapsedMs));
  });
});
