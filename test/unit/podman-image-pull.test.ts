/**
 * A session's registry image that the host lacks is pulled by an explicit `podman pull` within
 * daemon.pull_timeout, not by `podman run`/`create` under the short podman_timeout (a large image could
 * never be pulled by a session: every one ended `error` "still pulling" and the next pulled from scratch).
 * Sessions of the same image share one pull; `run`/`create` always get `--pull never`.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CreateContainerOptions, OutputHandler } from '../../src/adapters/podman.js';
import { PodmanClient } from '../../src/adapters/podman.js';
import type { PodmanError } from '../../src/adapters/podman-errors.js';
import { standInPodman } from '../helpers/stand-in-podman.js';

const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-pull-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const IMAGE = '127.0.0.1:5000/agents/big:1';
/** Longer than the short deadline the client gets (PODMAN_TIMEOUT_MS). */
const PULL_SECONDS = 1.5;
const PODMAN_TIMEOUT_MS = 400;

/**
 * Podman 4.3 as seen from the client: the image is present once `${bin}.image` exists; `pull` takes
 * PULL_SECONDS (or fails as a refusing registry does, with `pullFails`); `run`/`create --pull never`
 * of a missing image fail at once with "image not known" and make nothing; without `--pull never` they
 * pull it themselves first (what Podman does). Every call is logged in `${bin}.log`. `sharedBy`: the pull
 * answers only once that many `run`/`create` calls have found no image (at most 10 s), and then after a
 * second or PULL_SECONDS more, so that the sessions a test starts together all wait for this pull whatever
 * the machine's load (a pull that failed at once ended before the second session's first run had failed,
 * and that session pulled again: seen in CI).
 */
function podman(options: { pullFails?: boolean; pullSeconds?: number; sharedBy?: number } = {}) {
  const seconds = options.pullSeconds ?? PULL_SECONDS;
  const sharedBy = options.sharedBy ?? 0;
  return standInPodman(
    dir,
    (self) => `echo "$1" >> '${self}.log'
case "$1" in
  pull)
    echo "Trying to pull ${IMAGE}..." >&2
    n=0
    while [ "$(grep -c -e '^missing$' '${self}.log')" -lt ${sharedBy} ] && [ "$n" -lt 500 ]; do sleep 0.02; n=$((n + 1)); done
    ${
      options.pullFails
        ? `sleep 1; echo 'Error: initializing source docker://${IMAGE}: pinging container registry 127.0.0.1:5000: Get "https://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused' >&2; exit 125`
        : `sleep ${seconds}; touch '${self}.image'; echo pulled >> '${self}.log'; echo 0123abcd`
    }
    ;;
  run|create)
    if [ ! -e '${self}.image' ]; then
      case " $* " in
        *" --pull never "*) echo missing >> '${self}.log'; echo "Error: ${IMAGE}: image not known" >&2; exit 125 ;;
      esac
      echo "Trying to pull ${IMAGE}..." >&2
      sleep ${seconds}; touch '${self}.image'
    fi
    if [ "$1" = run ]; then echo started; else echo 0123cafe; fi
    ;;
esac
`,
  );
}

const client = (bin: string, pullTimeoutMs = 10_000) =>
  new PodmanClient({ bin, timeoutMs: PODMAN_TIMEOUT_MS, pullTimeoutMs });

const options = (name: string, signal?: AbortSignal): CreateContainerOptions => ({
  name,
  image: IMAGE,
  labels: {},
  env: {},
  secrets: [],
  network: 'none',
  entrypoint: ['/bin/true'],
  args: [],
  ...(signal === undefined ? {} : { signal }),
});

function run(podmanClient: PodmanClient, name: string, signal?: AbortSignal) {
  const lines: string[] = [];
  const handler: OutputHandler = (text, _end, stream) => {
    if (stream === 'stdout') lines.push(text);
  };
  const attached = podmanClient.runAttached(options(name, signal), handler, signal);
  return { lines, exitCode: attached.exitCode };
}

const calls = (bin: string) =>
  existsSync(`${bin}.log`) ? readFileSync(`${bin}.log`, 'utf8').trim().split('\n') : [];
const count = (bin: string, what: string) => calls(bin).filter((c) => c === what).length;

describe('a session whose registry image the host lacks', () => {
  it('pulls it within pull_timeout, though the pull takes longer than podman_timeout; two sessions share one pull', {
    timeout: 20_000,
  }, async () => {
    const { bin } = podman({ sharedBy: 2 });
    const podmanClient = client(bin);
    const a = run(podmanClient, 'agentd-a');
    const b = run(podmanClient, 'agentd-b');
    expect(await a.exitCode).toBe(0);
    expect(await b.exitCode).toBe(0);
    expect(a.lines).toEqual(['started']);
    expect(b.lines).toEqual(['started']);
    expect(count(bin, 'pull')).toBe(1);
    expect(count(bin, 'pulled')).toBe(1);
    // Each session: the `run` that found no image, then the one that ran it.
    expect(count(bin, 'run')).toBe(4);
  });

  it('makes no call more when the image is present: one `podman run`', async () => {
    const { bin } = podman();
    const podmanClient = client(bin);
    await podmanClient.pullImage(IMAGE);
    const before = calls(bin).length;
    const a = run(podmanClient, 'agentd-a');
    expect(await a.exitCode).toBe(0);
    expect(calls(bin).slice(before)).toEqual(['run']);
  }, 20_000);

  it('creates the container of a host behind a connection after the same shared pull', {
    timeout: 20_000,
  }, async () => {
    const { bin } = podman({ sharedBy: 2 });
    const podmanClient = client(bin);
    const ids = await Promise.all([
      podmanClient.createContainer(options('agentd-a')),
      podmanClient.createContainer(options('agentd-b')),
    ]);
    expect(ids).toEqual(['0123cafe', '0123cafe']);
    expect(count(bin, 'pull')).toBe(1);
  });

  it('ends every waiting session with the pull error when the pull fails', { timeout: 20_000 }, async () => {
    const { bin } = podman({ pullFails: true, sharedBy: 2 });
    const podmanClient = client(bin);
    const errors = await Promise.all(
      ['agentd-a', 'agentd-b'].map((name) =>
        run(podmanClient, name).exitCode.then(
          () => expect.fail('the run succeeded'),
          (error: unknown) => error as PodmanError,
        ),
      ),
    );
    for (const error of errors) {
      expect(error.code).toBe('IMAGE_PULL_FAILED');
      expect(error.message).toContain(`image ${IMAGE} could not be pulled from 127.0.0.1:5000`);
    }
    expect(count(bin, 'pull')).toBe(1);
    expect(count(bin, 'run')).toBe(2);
  });

  it('names daemon.pull_timeout when the pull outlasts it', { timeout: 20_000 }, async () => {
    const { bin } = podman({ pullSeconds: 30 });
    const error = await run(client(bin, 500), 'agentd-a').exitCode.then(
      () => expect.fail('the run succeeded'),
      (e: unknown) => e as PodmanError,
    );
    expect(error.code).toBe('PODMAN_TIMEOUT');
    expect(error.message).toContain('Podman was still pulling image');
    expect(error.message).toContain('(daemon.pull_timeout)');
    expect(error.message).toContain('raise daemon.pull_timeout');
  });

  it('cuts the pull short when its only session is stopped, and pulls afresh for the next', {
    timeout: 20_000,
  }, async () => {
    const { bin } = podman({ pullSeconds: 30 });
    const podmanClient = client(bin);
    const stop = new AbortController();
    const a = run(podmanClient, 'agentd-a', stop.signal);
    while (count(bin, 'pull') === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    stop.abort();
    // As a `podman run` the stop killed: no exit code of its own.
    expect(await a.exitCode).toBe(-1);
    expect(count(bin, 'run')).toBe(1);
    // The pull was ended (not joined): a next session starts its own.
    const next = new AbortController();
    const b = run(podmanClient, 'agentd-b', next.signal);
    while (count(bin, 'pull') < 2) await new Promise((resolve) => setTimeout(resolve, 20));
    next.abort();
    expect(await b.exitCode).toBe(-1);
  });
});
