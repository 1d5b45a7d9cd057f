import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';

export interface GitServer {
  /** Clone URL of a repository served from dir. */
  url(name?: string): string;
  /** The directory served (holds the bare repositories). */
  dir: string;
  /** Adds a bare repository with these files in one commit; returns its URL. */
  addRepo(name: string, files: Record<string, string>): Promise<string>;
  stop(): Promise<void>;
}

export interface HttpGitServer extends GitServer {
  /** Every request received, in order, with whether it carried the right token and its Authorization header. */
  requests: { method: string; path: string; authorized: boolean; authorization?: string }[];
}

// Commits made by the helpers (and tests that build repositories of their own) must not depend on the
// host's git configuration.
export const GIT_ENV = {
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'agentd test',
  GIT_AUTHOR_EMAIL: 'test@agentd.invalid',
  GIT_COMMITTER_NAME: 'agentd test',
  GIT_COMMITTER_EMAIL: 'test@agentd.invalid',
};

/** A bare repository named `name` under baseDir, built from one commit per entry of `commits`. */
async function createBareRepo(
  baseDir: string,
  name: string,
  commits: Record<string, string>[],
): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'agentd-git-work-'));
  try {
    const git = (...args: string[]) => execa('git', args, { cwd: work, env: GIT_ENV });
    await git('init', '--quiet', '--initial-branch=main');
    for (const [index, files] of commits.entries()) {
      for (const [path, content] of Object.entries(files)) {
        mkdirSync(dirname(join(work, path)), { recursive: true });
        writeFileSync(join(work, path), content);
      }
      await git('add', '--all');
      await git('commit', '--quiet', '-m', `commit ${index + 1}`);
    }
    await execa('git', ['clone', '--quiet', '--bare', work, join(baseDir, name)], { env: GIT_ENV });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function createDefaultRepo(baseDir: string): Promise<void> {
  await createBareRepo(baseDir, 'repo.git', [
    { 'README.md': '# test repo\n\nServed by the agentd test harness.\n' },
    { 'hello.txt': 'hello\n', 'src/main.sh': 'echo main\n' },
  ]);
}

/** A port nobody listens on right now (the OS picks it). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Resolves once host:port accepts a connection; rejects after timeoutMs or when `alive()` says no. */
export async function waitForPort(
  port: number,
  timeoutMs = 10_000,
  alive: () => boolean = () => true,
  host = '127.0.0.1',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!alive()) throw new Error(`the server for port ${port} exited before listening`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing accepted connections on ${host}:${port} within ${timeoutMs} ms`);
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      // git daemon forks a child per connection: signal the whole group.
      process.kill(-(child.pid as number), signal);
    } catch {
      child.kill(signal);
    }
  };
  killGroup('SIGTERM');
  const timer = setTimeout(() => killGroup('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
}

/**
 * Serves bare repositories over git:// on 127.0.0.1 (sessions reach it with network host), or on
 * another address of this machine (Podman's bridge gateway, for sessions on the bridge).
 */
export async function startGitServer(host = '127.0.0.1'): Promise<GitServer> {
  const dir = mkdtempSync(join(tmpdir(), 'agentd-git-'));
  try {
    await createDefaultRepo(dir);
    // Another process may take the free port between the probe and the bind: try a few.
    for (let attempt = 0; ; attempt++) {
      const port = await freePort(host);
      let stderr = '';
      const child = spawn(
        'git',
        [
          'daemon',
          '--export-all',
          `--base-path=${dir}`,
          `--listen=${host}`,
          `--port=${port}`,
          '--reuseaddr',
          // Clients then see why a clone failed (e.g. a wrong path), as users of a real server would.
          '--informative-errors',
          dir,
        ],
        { detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      child.stderr?.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      try {
        await waitForPort(port, 10_000, () => child.exitCode === null && child.signalCode === null, host);
      } catch (error) {
        await stopProcess(child);
        if (attempt < 3) continue;
        throw new Error(`git daemon did not start: ${String(error)}: ${stderr}`);
      }
      return {
        dir,
        url: (name = 'repo.git') => `git://${host}:${port}/${name}`,
        addRepo: async (name, files) => {
          await createBareRepo(dir, name, [files]);
          return `git://${host}:${port}/${name}`;
        },
        stop: async () => {
          await stopProcess(child);
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Serves bare repositories over git's smart HTTP on 127.0.0.1 through `git http-backend`, answering
 * 401 to any request without `Authorization: Bearer <token>`; without a token it serves anyone.
 */
export async function startHttpGitServer(options: { token?: string } = {}): Promise<HttpGitServer> {
  const dir = mkdtempSync(join(tmpdir(), 'agentd-git-http-'));
  await createDefaultRepo(dir);
  const requests: HttpGitServer['requests'] = [];
  const children = new Set<ChildProcess>();

  const server = createHttpServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const authorization = req.headers.authorization;
    const authorized = options.token !== undefined && authorization === `Bearer ${options.token}`;
    requests.push({
      method: req.method ?? 'GET',
      path: url.pathname,
      authorized,
      ...(authorization === undefined ? {} : { authorization }),
    });
    if (!authorized && options.token !== undefined) {
      req.resume();
      res.writeHead(401, { 'Content-Type': 'text/plain', 'WWW-Authenticate': 'Basic realm="agentd-test"' });
      res.end('authentication required\n');
      return;
    }
    const header = (name: string) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value.join(', ') : (value ?? '');
    };
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      GIT_PROJECT_ROOT: dir,
      GIT_HTTP_EXPORT_ALL: '1',
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
      SERVER_SOFTWARE: 'agentd-test',
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: header('content-type'),
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
    };
    if (req.headers['content-length']) env.CONTENT_LENGTH = header('content-length');
    if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = header('content-encoding');
    if (req.headers['git-protocol']) env.GIT_PROTOCOL = header('git-protocol');

    const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    child.once('exit', () => children.delete(child));
    req.pipe(child.stdin);
    child.stdin.on('error', () => {});
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    // CGI output: header lines, a blank line, then the body.
    let head = Buffer.alloc(0);
    let headersSent = false;
    child.stdout.on('data', (chunk: Buffer) => {
      if (headersSent) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const text = head.toString('latin1');
      const crlf = text.indexOf('\r\n\r\n');
      const lf = text.indexOf('\n\n');
      const end = crlf !== -1 && (lf === -1 || crlf < lf) ? crlf + 4 : lf !== -1 ? lf + 2 : -1;
      if (end === -1) return;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of text.slice(0, end).split(/\r?\n/)) {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        const key = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (key.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 200;
        else headers[key] = value;
      }
      res.writeHead(status, headers);
      headersSent = true;
      res.write(head.subarray(end));
    });
    child.stdout.once('end', () => {
      if (!headersSent) {
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`git http-backend failed: ${stderr}\n`);
        return;
      }
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    dir,
    requests,
    url: (name = 'repo.git') => `http://127.0.0.1:${port}/${name}`,
    addRepo: async (name, files) => {
      await createBareRepo(dir, name, [files]);
      return `http://127.0.0.1:${port}/${name}`;
    },
    stop: async () => {
      for (const child of children) child.kill('SIGKILL');
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
