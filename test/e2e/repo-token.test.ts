/**
 * The repo token goes only where it belongs, and the repository URL git gets is the one that was
 * checked: the real daemon, the real CLI, real Podman and git's smart HTTP on 127.0.0.1.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { leftoversOfDaemons, startDaemon, stopCliProcesses, type TestDaemon } from '../helpers/daemon.js';
import { type HttpGitServer, startHttpGitServer } from '../helpers/git-server.js';
import { randomSessionId } from '../helpers/ids.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll } from '../helpers/resources.js';

const TOKEN = `REPO-TOKEN-SECRET-${randomSessionId()}`;

/** The configured origin: demands the token. */
let origin: HttpGitServer;
/** Another loopback server on another port, named by a trigger: serves anyone, logs what it gets. */
let other: HttpGitServer;
/** The configured origin of a third agent, which redirects every request to `other`. */
let redirector: { url: string; hits: string[]; close: () => Promise<void> };
let d: TestDaemon;

async function startRedirector(target: string): Promise<typeof redirector> {
  const hits: string[] = [];
  const server: Server = createServer((req, res) => {
    hits.push(req.url ?? '');
    res.writeHead(302, { Location: `${target}${(req.url ?? '/').replace(/^\/repo\.git/, '')}` });
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/repo.git`,
    hits,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

beforeAll(async () => {
  [origin, other] = await Promise.all([startHttpGitServer({ token: TOKEN }), startHttpGitServer()]);
  redirector = await startRedirector(other.url());
  const agent = (name: string, repo: string, extra: Record<string, unknown> = {}) => ({
    name,
    image: TEST_IMAGE,
    command: ['sh', '-c', 'echo "cloned: $(ls | tr "\\n" " ")"'],
    repo,
    network: 'host',
    repo_token: 'env:E2E_REPO_TOKEN',
    allow_insecure_http: true,
    ...extra,
  });
  d = await startDaemon(
    {
      agents: [
        agent('tok', origin.url()),
        agent('strict', origin.url(), { repo_token_required: true }),
        agent('redirected', redirector.url),
        // Asks git to trace the clone's HTTP into a file the agent reads afterwards, unredacted.
        agent('traced', origin.url(), {
          env: { GIT_TRACE_CURL: '/tmp/clone-trace', GIT_TRACE_REDACT: '0' },
          command: [
            'sh',
            '-c',
            'echo "redacted: $(grep -c "Authorization: Bearer <redacted>" /tmp/clone-trace)"; ' +
              'echo "in the clear: $(grep "Authorization:" /tmp/clone-trace | grep -vc "<redacted>")"',
          ],
        }),
        // Asks git's trace2 to list the clone's config and the variable that carries the token (trace2
        // never redacts what it lists) into a file the agent reads afterwards.
        agent('traced2', origin.url(), {
          env: {
            GIT_TRACE2_EVENT: '/tmp/clone-trace2',
            GIT_TRACE2_CONFIG_PARAMS: 'http.*',
            GIT_TRACE2_ENV_VARS: 'GIT_CONFIG_VALUE_0',
          },
          command: [
            'sh',
            '-c',
            'echo "headers traced: $(cat /tmp/clone-trace2 2>/dev/null | grep -c "Authorization: Bearer")"',
          ],
        }),
        { name: 'capable', image: TEST_IMAGE, command: ['true'], cap_add: ['net_raw'] },
      ],
    },
    { env: { E2E_REPO_TOKEN: TOKEN } },
  );
});

afterAll(async () => {
  if (d?.running) expect(await d.stop('SIGTERM', 30_000)).toBe(0);
  await cleanupAll();
  await Promise.allSettled([origin?.stop(), other?.stop(), redirector?.close()]);
});

afterEach(async () => {
  await stopCliProcesses();
  origin.requests.length = 0;
  other.requests.length = 0;
  redirector.hits.length = 0;
  expect(await leftoversOfDaemons()).toEqual([]);
});

describe('repo_token', () => {
  it('reaches the configured origin', async () => {
    const run = await d.cli(['trigger', 'tok']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('cloned: README.md hello.txt src ');
    expect(origin.requests.length).toBeGreaterThan(0);
    expect(origin.requests.every((r) => r.authorized)).toBe(true);
    expect(run.stdout).not.toContain('repo_token is not sent');
  });

  it('does not reach another loopback server named by a trigger: the session clones without it and says so', async () => {
    const url = other.url();
    const run = await d.cli(['trigger', 'tok', url]);
    expect(run.code, run.stderr).toBe(0);
    const port = new URL(url).port;
    expect(run.stdout).toContain(
      `agentd: repo_token is not sent to http://127.0.0.1:${port}: it goes only to the origin of the agent's repo and to repo_token_hosts (${new URL(origin.url()).origin}); cloning without it`,
    );
    expect(run.stdout).toContain('cloned: README.md hello.txt src ');
    // The second server saw the clone, and not one request carried an Authorization header.
    expect(other.requests.length).toBeGreaterThan(0);
    expect(other.requests.filter((r) => r.authorization !== undefined)).toEqual([]);
    expect(origin.requests).toEqual([]);
    // The notice is in the stored log too, where `agentd logs` shows it.
    const id = /session ([0-9a-f]{16}) accepted/.exec(run.stdout)?.[1] as string;
    const logs = await d.cli(['logs', id]);
    expect(logs.stdout).toContain('agentd: repo_token is not sent to');
    expect(d.stateDirText()).not.toContain(TOKEN);
  });

  it('makes an agent that requires it reject a trigger for another origin, before anything runs', async () => {
    const run = await d.cli(['trigger', 'strict', other.url()]);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain(
      `agentd: trigger rejected: repo_token is not sent to http://127.0.0.1:${new URL(other.url()).port}`,
    );
    expect(run.stderr).toContain(
      'agent "strict" sets repo_token_required: true, so it does not run without it',
    );
    expect(other.requests).toEqual([]);
    // Its own origin still works.
    const own = await d.cli(['trigger', 'strict']);
    expect(own.code, own.stderr).toBe(0);
    expect(origin.requests.every((r) => r.authorized)).toBe(true);
  });

  it("is redacted from a trace of the clone that the agent's env asks for and the agent can read", async () => {
    const run = await d.cli(['trigger', 'traced']);
    expect(run.code, run.stderr).toBe(0);
    expect(origin.requests.every((r) => r.authorized)).toBe(true);
    // The daemon masks the value in the output, so the agent counts what it could read instead.
    expect(run.stdout).toMatch(/redacted: [1-9]/);
    expect(run.stdout).toContain('in the clear: 0');
  });

  it("is in no trace2 file of the clone that the agent's env asks for and the agent can read", async () => {
    const run = await d.cli(['trigger', 'traced2']);
    expect(run.code, run.stderr).toBe(0);
    expect(origin.requests.every((r) => r.authorized)).toBe(true);
    expect(run.stdout).toContain('headers traced: 0');
  });

  it('is not carried along a redirect from the configured origin to another server', async () => {
    const run = await d.cli(['trigger', 'redirected']);
    // git does not follow the redirect with the token; the clone fails and says why.
    expect(run.code).toBe(1);
    expect(run.stdout + run.stderr).toMatch(/git clone of http:\/\/127\.0\.0\.1:\d+\/repo\.git failed/);
    expect(redirector.hits.length).toBeGreaterThan(0);
    expect(other.requests.filter((r) => r.authorization !== undefined)).toEqual([]);
  });
});

describe('cap_add', () => {
  it('is said in the daemon log at start', () => {
    const line = d.logs().find((l) => l.event === 'agent.cap_add');
    expect(line).toMatchObject({
      level: 40,
      agent: 'capable',
      capabilities: ['NET_RAW'],
      msg: 'agent capable runs its command with capabilities NET_RAW (cap_add)',
    });
  });
});

describe('repository URLs git would read as something else', () => {
  it.each([
    [
      'https:/\\evil.com/x',
      'contains a backslash at character 8',
      'https:/\\host/x is an ssh address to git',
    ],
    ['https:/evil.com/x', 'must have two slashes after "https:"', 'scp-style ssh address'],
    ['evil.com:org/x.git', 'is an scp-style ssh address (host:path) to git'],
    ['ext::sh -c touch% /tmp/pwned', 'contains whitespace (U+0020) at character 8'],
    ['ext::sh', `uses git's "ext::" transport syntax, which runs a program instead of fetching a URL`],
    ['file:///etc/passwd', 'uses file://; only https://, http:// or git:// repositories are supported'],
    ['https://example.com/a b.git', 'contains whitespace (U+0020) at character 22'],
    ['https://example.com/x\t.git', 'contains the control character U+0009 at character 22'],
    ['https://example.com/x\u001b[2J.git', 'contains the control character U+001B at character 22'],
  ])('rejects %j with exit 3 and the reason', async (url, ...fragments) => {
    const run = await d.cli(['trigger', 'tok', url]);
    expect(run.code).toBe(3);
    for (const fragment of fragments) expect(run.stderr).toContain(fragment);
    // The reason names the value escaped: an escape sequence never reaches the terminal raw.
    expect(run.stderr).not.toContain('\u001b');
  });

  it.each([
    ['https://example.com/x\u0000.git', 'contains the control character U+0000 at character 22'],
    ['https://example.com/x\n.git', 'contains the control character U+000A at character 22'],
  ])('rejects %j over the socket (argv cannot carry it)', async (repo, fragment) => {
    const reply = await d.request({ type: 'trigger', agent: 'tok', repo });
    expect(reply).toMatchObject({ type: 'rejected', code: 'bad_repo' });
    expect(String(reply?.reason)).toContain(fragment);
  });

  it('records and clones the normalised URL, the one that was checked', async () => {
    const raw = origin.url().replace('http://', 'HTTP://').replace('/repo.git', '/x/../repo.git');
    const run = await d.cli(['trigger', 'tok', raw, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const { sessionId } = JSON.parse(run.stdout) as { sessionId: string };
    expect(d.record(sessionId)?.repo).toBe(origin.url());
    // The normalised URL is the configured origin, so the token went with it.
    expect(origin.requests.every((r) => r.authorized)).toBe(true);
  });
});
