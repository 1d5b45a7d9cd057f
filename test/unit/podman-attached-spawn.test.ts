/**
 * The podman whose output streams into the daemon's sockets (`run`, `start --attach`, `logs`) at every
 * session: its exit code, a podman that is not there, a cancel. Through the real PodmanClient with a
 * stand-in `podman` script, and `spawnAttached` with the sockets of a socket pair.
 *
 * An attached run that ended well used to come back from execa as a failed subprocess
 * (ERR_STREAM_PREMATURE_CLOSE: the daemon closes its copies of the child's sockets right after the spawn,
 * as it must), and execa then built an error whose message escaped the whole command line twice: for
 * `podman run`, the ~15 KB setup script, at every session, for nothing (only the exit code is read).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

/** Every execa subprocess the client starts, so that a test can look at how each one ended. */
const started = vi.hoisted(() => [] as Promise<{ failed: boolean; message?: string }>[]);
vi.mock('execa', async (importOriginal) => {
  const actual = await importOriginal<typeof import('execa')>();
  return {
    ...actual,
    execa: (...args: Parameters<typeof actual.execa>) => {
      const subprocess = actual.execa(...args);
      started.push(subprocess as unknown as Promise<{ failed: boolean; message?: string }>);
      return subprocess;
    },
  };
});

const { PodmanClient, spawnAttached } = await import('../../src/adapters/podman.js');
const { PodmanError } = await import('../../src/adapters/podman-errors.js');
const { standInPodman } = await import('../helpers/stand-in-podman.js');

const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-attached-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function attached(
  script: string,
  signal?: AbortSignal,
): Promise<{ lines: string[]; exitCode: number }> {
  const { client } = standInPodman(dir, () => script);
  const lines: string[] = [];
  const run = client.startAttached('c', (text, _end, stream) => lines.push(`${stream} ${text}`), signal);
  return { exitCode: await run.exitCode, lines };
}

/** A connected pair of Unix sockets: `end` for a child's stdio, `source` read here. */
async function socketPair(): Promise<{ end: Socket; source: Socket; close: () => void }> {
  const path = join(dir, `s-${Math.random().toString(16).slice(2)}.sock`);
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const source = connect(path);
  const end = await accepted;
  server.close();
  return { end, source, close: () => source.destroy() };
}

describe('an attached podman', () => {
  it('that ends well is no failed subprocess: no error is made of its command line', async () => {
    started.length = 0;
    const { exitCode, lines } = await attached('echo hello\nexit 0\n');
    expect(exitCode).toBe(0);
    expect(lines).toEqual(['stdout hello']);
    const results = await Promise.all(started);
    expect(results.filter((r) => r.failed).map((r) => r.message?.split('\n')[0])).toEqual([]);
  });

  it("hands on the command's own exit code, and its output", async () => {
    const { exitCode, lines } = await attached('echo out\necho err >&2\nexit 3\n');
    expect(exitCode).toBe(3);
    expect(lines.sort()).toEqual(['stderr err', 'stdout out']);
  });

  it('that is not installed fails as PODMAN_NOT_INSTALLED', async () => {
    const client = new PodmanClient({ bin: join(dir, 'no-such-podman'), timeoutMs: 10_000 });
    const run = client.startAttached('c', () => {});
    const error = await run.exitCode.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PodmanError);
    expect((error as InstanceType<typeof PodmanError>).code).toBe('PODMAN_NOT_INSTALLED');
  });

  it('is sent SIGTERM by a cancel, which ends it (-1: no exit code of its own)', async () => {
    const abort = new AbortController();
    const running = attached('echo started\nexec sleep 30\n', abort.signal);
    await new Promise((resolve) => setTimeout(resolve, 200));
    abort.abort();
    const { exitCode, lines } = await running;
    expect(exitCode).toBe(-1);
    expect(lines).toEqual(['stdout started']);
  });

  it('that ignores SIGTERM is killed after killAfterMs; a cancel made before the spawn ends it at once', async () => {
    const out = await socketPair();
    const err = await socketPair();
    const { bin } = standInPodman(dir, () => "trap '' TERM\necho ready\nwhile :; do sleep 0.05; done\n");
    const abort = new AbortController();
    const ready = new Promise((resolve) => out.source.once('data', resolve));
    const ended = spawnAttached(bin, [], {
      signal: abort.signal,
      stdout: out.end,
      stderr: err.end,
      killAfterMs: 100,
    });
    out.end.destroy();
    err.end.destroy();
    await ready;
    abort.abort();
    expect(await ended).toEqual({});
    out.close();
    err.close();

    const again = await socketPair();
    const { bin: sleeper } = standInPodman(dir, () => 'exec sleep 30\n');
    const result = spawnAttached(sleeper, [], {
      signal: AbortSignal.abort(),
      stdout: again.end,
      stderr: again.end,
    });
    again.end.destroy();
    expect(await result).toEqual({});
    again.close();
  });
});
