/**
 * The repository as the attacker: a git server on 127.0.0.1 that is the agent's own origin (so the
 * repo token goes to it) and answers badly, and repositories whose content an earlier session with
 * push access planted. The real daemon, real Podman and the image's git. What is covered elsewhere is
 * not repeated here: the token's scoping, redirects and traces (test/e2e/repo-token.test.ts), caches'
 * git config and hooks (test/e2e/work.test.ts), a server that never answers while the daemon crashes
 * (crash-running.test.ts), a clone out of memory (containment.test.ts), the URL rule itself
 * (test/unit/repo-url.test.ts). Each case checks what an operator would: the outcome and its message,
 * the output, the record, that the token is nowhere, and that nothing is left in Podman.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, type CliResult, leftoversOfDaemons, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { GIT_ENV, type HttpGitServer, startHttpGitServer } from '../helpers/git-server.js';
import { randomSessionId } from '../helpers/ids.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll } from '../helpers/resources.js';

const TOKEN = `REPOTOKEN${randomSessionId()}${randomSessionId()}`;

/** Serves the repositories (no token of its own: the front checks it). */
let backend: HttpGitServer;
/** Another origin, which a planted .gitmodules names: it must hear nothing. */
let other: HttpGitServer;

/** A bare repository `name` in the backend, made by a shell script run in an empty work tree. */
async function plantRepo(name: string, script: string): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'agentd-hostile-repo-'));
  try {
    await execa('sh', ['-ec', `git init -q --initial-branch=main\n${script}`], { cwd: work, env: GIT_ENV });
    await execa('git', ['clone', '-q', '--bare', work, join(backend.dir, name)], { env: GIT_ENV });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function pkt(text: string): Buffer {
  const body = Buffer.from(text);
  return Buffer.concat([Buffer.from((body.length + 4).toString(16).padStart(4, '0')), body]);
}

/**
 * The agents' origin: it demands the token, then answers as the first path segment says (`ok` passes
 * the rest of the path on to the backend).
 */
let front: { port: number; server: Server; requests: { path: string; authorized: boolean }[] };
const answering = new Set<ServerResponse>();

function startFront(): Promise<typeof front> {
  const requests: (typeof front)['requests'] = [];
  const backendPort = () => new URL(backend.url()).port;
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    const authorized = req.headers.authorization === `Bearer ${TOKEN}`;
    requests.push({ path, authorized });
    if (!authorized) {
      res.writeHead(401, { 'Content-Type': 'text/plain' });
      res.end('authentication required\n');
      return;
    }
    answering.add(res);
    res.once('close', () => answering.delete(res));
    const [, mode, ...rest] = path.split('/');
    const sent = String(req.headers.authorization);
    switch (mode) {
      case 'reflect':
        // An error page (git prints a text/plain one as `remote:` lines) that repeats the header it was
        // sent and would retitle the terminal and clear it.
        res.writeHead(403, { 'Content-Type': 'text/plain' });
        res.end(`denied \x1b]0;pwned\x07\x1b[2J you sent: ${sent}\nsecond line\n`);
        return;
      case 'err':
        // The protocol's own error packet, repeating the header.
        res.writeHead(200, { 'Content-Type': 'application/x-git-upload-pack-advertisement' });
        res.end(
          Buffer.concat([
            pkt('# service=git-upload-pack\n'),
            Buffer.from('0000'),
            pkt(`ERR you sent: ${sent}\n`),
          ]),
        );
        return;
      case 'html':
        res.writeHead(200, { 'Content-Type': 'text/html' });
        res.end('<html><body>Sign in to continue</body></html>\n');
        return;
      case 'portal':
        // The same without a final newline: git's dumb-HTTP fallback reads it as a repository without refs.
        res.writeHead(200, { 'Content-Type': 'text/html' });
        res.end('<html><body>Sign in to continue</body></html>');
        return;
      case 'garbage':
        res.writeHead(200, { 'Content-Type': 'application/x-git-upload-pack-advertisement' });
        res.end('\x00\x01\x02zzzz garbage');
        return;
      case 'trickle': {
        // One byte a second, forever.
        res.writeHead(200, { 'Content-Type': 'application/x-git-upload-pack-advertisement' });
        const timer = setInterval(() => res.write('0'), 1000);
        res.once('close', () => clearInterval(timer));
        return;
      }
      case 'flood': {
        // An error page of 40 MB: 400,000 lines of 97 bytes, then one of 8 MB.
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        const line = `${'flood '.repeat(16)}\n`;
        let n = 0;
        const more = () => {
          while (n < 400_000) {
            n++;
            if (!res.write(line)) return void res.once('drain', more);
          }
          res.end(`${'x'.repeat(8_000_000)}\nlast line\n`);
        };
        more();
        return;
      }
      default: {
        // `ok`, or `cut`: the pack closed after its first 64 KiB.
        const proxied = request(
          {
            host: '127.0.0.1',
            port: backendPort(),
            path: `/${rest.join('/')}`,
            method: req.method,
            headers: { ...req.headers, host: `127.0.0.1:${backendPort()}` },
          },
          (answer) => {
            res.writeHead(answer.statusCode ?? 500, answer.headers);
            if (mode !== 'cut' || req.method !== 'POST') {
              answer.pipe(res);
              return;
            }
            let bytes = 0;
            answer.on('data', (chunk: Buffer) => {
              if (res.destroyed) return;
              res.write(chunk);
              bytes += chunk.length;
              if (bytes > 65_536) {
                answer.destroy();
                res.destroy();
              }
            });
            answer.on('end', () => res.end());
          },
        );
        proxied.on('error', () => res.destroy());
        req.pipe(proxied);
      }
    }
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ port: (server.address() as AddressInfo).port, server, requests }),
    ),
  );
}

const url = (mode: string, name = 'repo.git') => `http://127.0.0.1:${front.port}/${mode}/${name}`;

interface Reply {
  sessionId: string;
  outcome: string;
  exitCode?: number;
  message?: string;
  durationMs: number;
}

let d: TestDaemon;
/** Started together in beforeAll; each test reads its own. */
const runs = new Map<string, Promise<CliResult>>();

async function outcomeOf(name: string): Promise<{ reply: Reply; log: string }> {
  const result = await (runs.get(name) as Promise<CliResult>);
  const reply = JSON.parse(result.stdout) as Reply;
  const log = (await d.cli(['logs', reply.sessionId])).stdout;
  return { reply, log };
}

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
}

/** What `agentd show` prints on a terminal. */
async function shownOnTerminal(id: string): Promise<string> {
  const tty = await execa('script', ['-qec', `${process.execPath} ${CLI} show ${id}`, '/dev/null'], {
    env: { AGENTD_SOCKET: d.socketPath },
    reject: false,
  });
  return tty.stdout;
}

/** Through every link it can, and what it has: the names, the submodule, the attributes. */
const LOOK = [
  'for f in bundle init-env shadow; do head -c 1 "$f" >/dev/null 2>&1 && echo "read $f"; done',
  // Counted by the shell: one name holds a newline.
  'set -- * .[!.]*; echo "entries: $#"',
  'echo "submodule: $(ls -A sub | wc -l)"',
  'echo "long name: $(ls | grep -c "^n\\{255\\}$")"',
  'echo looked',
].join('\n');

beforeAll(async () => {
  [backend, other] = await Promise.all([startHttpGitServer(), startHttpGitServer()]);
  front = await startFront();
  const agent = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    image: TEST_IMAGE,
    command: ['sh', '-c', 'echo "cloned: $(ls -A | tr "\\n" " ")"'],
    repo: url('ok'),
    network: 'host',
    repo_token: 'env:E2E_REPO_TOKEN',
    allow_insecure_http: true,
    ...extra,
  });
  const [daemon] = await Promise.all([
    startDaemon(
      {
        agents: [
          agent('tok'),
          agent('short', { timeout: '6s' }),
          agent('small', {
            resources: { disk: '16m' },
            command: ['sh', '-c', 'echo "allocated: $(du -k big | cut -f1) KiB of $(stat -c %s big) bytes"'],
          }),
          agent('look', { command: ['sh', '-c', LOOK] }),
          agent('runs', { command: ['./run'] }),
          agent('count', {
            command: ['sh', '-c', 'echo "files: $(find . -path ./.git -prune -o -type f -print | wc -l)"'],
          }),
        ],
        daemon: { max_sessions: 16 },
      },
      { env: { E2E_REPO_TOKEN: TOKEN } },
    ),
    plantRepo('big.git', 'head -c 3000000 /dev/urandom > big; git add big; git commit -qm big'),
    plantRepo('random.git', 'head -c 40000000 /dev/urandom > big; git add big; git commit -qm big'),
    plantRepo('zeros.git', 'head -c 64000000 /dev/zero > big; git add big; git commit -qm big'),
    plantRepo(
      'planted.git',
      [
        'ln -s /run/secrets/agentd/bundle.0 bundle',
        'ln -s /run/secrets/agentd/bundle.0 run',
        'ln -s /proc/1/environ init-env',
        'ln -s /etc/shadow shadow',
        'ln -s ../.. up',
        `printf x > "$(printf 'new\\nline')"`,
        `printf x > "$(printf 'esc\\033]0;pwned\\007\\033[2J')"`,
        `printf x > "$(printf 'n%.0s' $(seq 1 255))"`,
        // A submodule on another origin, its URL then changed to a file:// path; a filter nobody defines.
        `git -c protocol.file.allow=always submodule add -q ${other.url()} sub`,
        'git config -f .gitmodules submodule.sub.url file:///etc',
        `printf '* filter=evil\\n' > .gitattributes`,
        'git add -A; git commit -qm planted',
      ].join('\n'),
    ),
    plantRepo(
      'headless.git',
      'echo hi > a; git add a; git commit -qm one; git symbolic-ref HEAD refs/heads/gone',
    ),
    plantRepo(
      'many.git',
      'i=0; while [ $i -lt 100 ]; do mkdir -p d/$i; seq -f "d/$i/f%g" 1 1000 | xargs touch; i=$((i + 1)); done; git add -A; git commit -qm many',
    ),
    execa('git', ['init', '-q', '--bare', join(backend.dir, 'empty.git')], { env: GIT_ENV }),
  ]);
  d = daemon;
  other.requests.length = 0;
  const start = (name: string, agentName: string, repo: string) =>
    runs.set(name, d.cli(['trigger', agentName, repo, '--json']));
  start('reflect', 'tok', url('reflect'));
  start('err', 'tok', url('err'));
  start('html', 'tok', url('html'));
  start('portal', 'tok', url('portal'));
  start('garbage', 'tok', url('garbage'));
  start('cut', 'tok', url('cut', 'big.git'));
  start('trickle', 'short', url('trickle'));
  start('random', 'small', url('ok', 'random.git'));
  start('zeros', 'small', url('ok', 'zeros.git'));
  start('look', 'look', url('ok', 'planted.git'));
  start('runs', 'runs', url('ok', 'planted.git'));
  start('empty', 'tok', url('ok', 'empty.git'));
  start('headless', 'tok', url('ok', 'headless.git'));
  start('many', 'count', url('ok', 'many.git'));
}, 180_000);

afterAll(async () => {
  await Promise.allSettled(runs.values());
  for (const res of answering) res.destroy();
  if (d?.running) {
    expect((await d.cli(['status'])).stdout).toMatch(/: ready,/);
    expect(d.stderr()).not.toContain(TOKEN);
    expect(d.stateDirText()).not.toContain(TOKEN);
    expect(await d.stop('SIGTERM', 30_000)).toBe(0);
  }
  const left = await leftoversOfDaemons();
  await cleanupAll();
  front?.server.closeAllConnections();
  await new Promise<void>((resolve) => (front ? front.server.close(() => resolve()) : resolve()));
  await Promise.allSettled([backend?.stop(), other?.stop()]);
  expect(left, 'podman objects the daemon left behind').toEqual([]);
});

describe('a git server that answers badly', () => {
  it('repeats the token in its error page, with escape sequences: the clone fails saying so, the token masked, the terminal untouched', async () => {
    const { reply, log } = await outcomeOf('reflect');
    expect(reply.outcome).toBe('failed');
    expect(reply.message).toContain(`git clone of ${url('reflect')} failed: remote: denied`);
    expect(reply.message).toContain('you sent: Bearer ********');
    expect(reply.message).toContain('The requested URL returned error: 403');
    expect(log).toContain('you sent: Bearer ********');
    expect(`${reply.message}${log}`).not.toContain(TOKEN);
    // Went to the origin with the token, which it then repeated.
    expect(front.requests.some((r) => r.path.startsWith('/reflect/') && r.authorized)).toBe(true);
    const shown = await shownOnTerminal(reply.sessionId);
    expect(shown).toContain('remote: denied ^[]0;pwned^G^[[2J you sent: Bearer ********');
    expect(shown).not.toContain('\x1b]0;');
    expect(shown).not.toContain('\x1b[2J');
  });

  it("repeats the token in the protocol's error packet: masked", async () => {
    const { reply } = await outcomeOf('err');
    expect(reply).toMatchObject({ outcome: 'failed', exitCode: 128 });
    expect(reply.message).toBe(
      `git clone of ${url('err')} failed: fatal: remote error: you sent: Bearer ********`,
    );
  });

  it.each([
    ['html', 'html', 'info/refs not valid: is this a git repository?'],
    ['garbage', 'garbage', 'fatal: protocol error: bad line length character'],
    ['closes mid-pack', 'cut', 'fatal: early EOF'],
  ])('answers %s: one failed outcome naming the clone and why', async (_, name, why) => {
    const { reply } = await outcomeOf(name);
    expect(reply).toMatchObject({ outcome: 'failed', exitCode: 128 });
    expect(reply.message).toMatch(/^git clone of http:\/\/127\.0\.0\.1:\d+\/\w+\/\w+\.git failed: /);
    expect(reply.message).toContain(why);
    expect(reply.durationMs).toBeLessThan(30_000);
    expect(d.record(reply.sessionId)).toMatchObject({ outcome: 'failed', phase: 'finished' });
    expect(d.record(reply.sessionId)?.commit).toBeUndefined();
  });

  it('answers a page of HTML without a final newline: git reads an empty repository, says so, and the command runs in it', async () => {
    const { reply, log } = await outcomeOf('portal');
    expect(reply.outcome).toBe('succeeded');
    expect(log).toBe('warning: You appear to have cloned an empty repository.\ncloned: .git \n');
    expect(d.record(reply.sessionId)?.commit).toBeUndefined();
  });

  it('answers one byte a second forever: the timeout ends the clone, on time', async () => {
    const { reply } = await outcomeOf('trickle');
    expect(reply).toMatchObject({
      outcome: 'timed_out',
      message: 'session exceeded its timeout of 6s while cloning',
    });
    expect(reply.durationMs).toBeLessThan(6_000 + 10_000);
    expect((await d.leftovers()).containers.filter((c) => c.includes(reply.sessionId))).toEqual([]);
  });

  it('answers one byte a second to an agent without a timeout: a cancel ends the clone at once', async () => {
    const run = d.cli(['trigger', 'tok', url('trickle'), '--json']);
    let id: string | undefined;
    while (id === undefined) {
      await new Promise((r) => setTimeout(r, 250));
      id = d
        .records()
        .find((r) => r.repo === url('trickle') && r.agent === 'tok' && r.phase === 'cloning')?.id;
    }
    const cancelled = Date.now();
    expect((await d.cli(['cancel', id])).code).toBe(0);
    const reply = JSON.parse((await run).stdout) as Reply;
    expect(Date.now() - cancelled).toBeLessThan(10_000);
    expect(reply).toMatchObject({
      sessionId: id,
      outcome: 'cancelled',
      message: 'session cancelled while cloning',
    });
  });

  it('sends a 40 MB error page: the message keeps git’s last words and stays short, the log and the daemon bounded', async () => {
    const before = rssKb(d.pid);
    const run = await d.cli(['trigger', 'tok', url('flood'), '--json']);
    const reply = JSON.parse(run.stdout) as Reply;
    expect(reply.outcome).toBe('failed');
    expect(reply.message).toMatch(/remote: last line \| fatal: unable to access .*returned error: 500$/);
    expect(reply.message?.length).toBeLessThan(6_000);
    const log = (await d.cli(['logs', reply.sessionId])).stdout;
    expect(log.length).toBeLessThan(2 * 1024 * 1024);
    expect(rssKb(d.pid) - before).toBeLessThan(100 * 1024);
    expect((await d.cli(['status'])).stdout).toMatch(/: ready,/);
  });
});

describe('a repository that is too big', () => {
  it('has a pack larger than the disk bound: the clone fails with no space left, naming the clone', async () => {
    const { reply } = await outcomeOf('random');
    expect(reply).toMatchObject({ outcome: 'failed', exitCode: 128 });
    expect(reply.message).toContain(`git clone of ${url('ok', 'random.git')} failed: `);
    expect(reply.message).toContain('No space left on device');
  });

  it('has a 64 MB file of zeros (a 64 KB pack) on a 16 MiB disk: git checks it out sparse, taking almost none of the bound', async () => {
    const { reply, log } = await outcomeOf('zeros');
    expect(reply.outcome).toBe('succeeded');
    const [, kib, bytes] = /allocated: (\d+) KiB of (\d+) bytes/.exec(log) ?? [];
    expect(Number(bytes)).toBe(64_000_000);
    expect(Number(kib)).toBeLessThan(16 * 1024);
  });

  it('has 100,000 files: cloned whole within the bounds', async () => {
    const { reply, log } = await outcomeOf('many');
    expect(reply.outcome, log).toBe('succeeded');
    expect(log).toBe('files: 100000\n');
  });
});

describe('what an earlier session planted in the repository', () => {
  it('links to the credential bundle, /proc/1 and /etc/shadow, odd names, a submodule on another origin and a file:// one, a filter: nothing read, nothing fetched', async () => {
    const { reply, log } = await outcomeOf('look');
    expect(reply.outcome, log).toBe('succeeded');
    // bundle, run, init-env, shadow, up, three odd names, sub, .gitmodules, .gitattributes, .git.
    expect(log).toBe('entries: 12\nsubmodule: 0\nlong name: 1\nlooked\n');
    expect(other.requests).toEqual([]);
    expect(d.record(reply.sessionId)?.commit).toMatch(/^[0-9a-f]{40}$/);
  });

  it('makes the command path (./run) a link to the root-only credential bundle: not executable, 126', async () => {
    const { reply, log } = await outcomeOf('runs');
    expect(reply).toMatchObject({ outcome: 'failed', exitCode: 126 });
    expect(log).toBe('agentd: ./run: permission denied (not an executable file)\n');
  });

  it.each([
    ['empty', 'warning: You appear to have cloned an empty repository.'],
    ['headless', 'warning: remote HEAD refers to nonexistent ref, unable to checkout'],
  ])(
    'is %s: git says so first, the command runs in the empty checkout, no commit is recorded',
    async (name, warning) => {
      const { reply, log } = await outcomeOf(name);
      expect(reply.outcome).toBe('succeeded');
      expect(log).toBe(`${warning}\ncloned: .git \n`);
      expect(d.record(reply.sessionId)?.commit).toBeUndefined();
    },
  );
});

describe('repository URLs a trigger names', () => {
  it('of 1 MB, over the socket: refused naming the field and the limit, not repeated', async () => {
    const reply = await d.request({
      type: 'trigger',
      agent: 'tok',
      repo: `${url('ok')}${'a'.repeat(1 << 20)}`,
    });
    expect(reply).toMatchObject({ type: 'error', code: 'bad_request', retryable: false });
    expect(String(reply?.message)).toContain(
      'repo: has 1048610 characters; a repository URL has at most 2048',
    );
    expect(JSON.stringify(reply).length).toBeLessThan(1_000);
  });

  it.each([
    `http://me:Hunter2@127.0.0.1:PORT/ok/repo.git`,
    `http://127.0.0.1:PORT/ok/repo.git?private_token=Hunter2`,
    `http://127.0.0.1:PORT/ok/repo.git#Hunter2`,
    `https://me:pa/Hunter2@127.0.0.1/x`,
  ])('with a password or token in it (%s): refused, in no reply, log or record', async (raw) => {
    const repo = raw.replace('PORT', String(front.port));
    const run = await d.cli(['trigger', 'tok', repo]);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/^agentd: trigger rejected: repository /);
    expect(`${run.stdout}${run.stderr}`).not.toContain('Hunter2');
    expect(d.stderr()).not.toContain('Hunter2');
    expect(d.stateDirText()).not.toContain('Hunter2');
  });
});
