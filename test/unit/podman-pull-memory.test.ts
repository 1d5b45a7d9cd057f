/**
 * A failed pull of a session's registry image is remembered on its host for PULL_FAILURE_MEMORY_MS: a
 * session of that image meanwhile ends at once with the same classified error, saying it is the
 * remembered result of an earlier pull, and makes no `podman pull`. Before, every session pulled again
 * (a burst of 100 triggers of an agent whose image cannot be pulled made 100 pulls in turn, each up to
 * daemon.pull_timeout when the registry hangs). The clock is the client's `now`, never the wall clock.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CreateContainerOptions } from '../../src/adapters/podman.js';
import { PodmanClient, PULL_FAILURE_MEMORY_MS, PULL_FAILURES_MAX } from '../../src/adapters/podman.js';
import type { PodmanError } from '../../src/adapters/podman-errors.js';
import { standInPodman } from '../helpers/stand-in-podman.js';

const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-pull-memory-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const IMAGE = '127.0.0.1:5000/agents/typo:1';

type PullAnswer = 'refused' | 'unknown' | 'hang' | 'unreachable' | 'ok';

/**
 * Podman 4.3 as seen from the client: the image is present once `${bin}.image` exists; `pull` answers as
 * `${bin}.answer` says (a registry that refuses, a tag it does not have, one that never answers, a host
 * that cannot be reached, or the image pulled); `run`/`create --pull never` of a missing image fail at
 * once with "image not known". Every call is logged in `${bin}.log`, a pull with its image.
 */
function podman(answer: PullAnswer) {
  const made = standInPodman(
    dir,
    (self) => `echo "$1" >> '${self}.log'
case "$1" in
  pull)
    echo "pull $3" >> '${self}.log'
    echo "Trying to pull $3..." >&2
    case "$(cat '${self}.answer')" in
      refused) echo "Error: initializing source docker://$3: pinging container registry 127.0.0.1:5000: Get \\"https://127.0.0.1:5000/v2/\\": dial tcp 127.0.0.1:5000: connect: connection refused" >&2; exit 125 ;;
      unknown) echo "Error: initializing source docker://$3: reading manifest 1 in 127.0.0.1:5000/agents/typo: manifest unknown" >&2; exit 125 ;;
      hang) exec sleep 30 ;;
      unreachable) echo "Error: unable to connect to Podman socket: connection refused" >&2; exit 125 ;;
      ok) touch '${self}.image'; echo 0123abcd ;;
    esac
    ;;
  run|create)
    if [ ! -e '${self}.image' ]; then echo "Error: ${IMAGE}: image not known" >&2; exit 125; fi
    if [ "$1" = run ]; then echo started; else echo 0123cafe; fi
    ;;
esac
`,
  );
  writeFileSync(`${made.bin}.answer`, answer);
  return made.bin;
}

const answer = (bin: string, what: PullAnswer) => writeFileSync(`${bin}.answer`, what);
const calls = (bin: string) =>
  existsSync(`${bin}.log`) ? readFileSync(`${bin}.log`, 'utf8').trim().split('\n') : [];
const pulls = (bin: string) => calls(bin).filter((c) => c === 'pull').length;

/** A client on a clock the test moves. */
function client(bin: string, pullTimeoutMs = 10_000) {
  const clock = { ms: 1_000_000 };
  const podmanClient = new PodmanClient({ bin, timeoutMs: 5_000, pullTimeoutMs, now: () => clock.ms });
  return { podmanClient, clock };
}

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

/** A session's run: its exit code, or the error it ended with. */
const run = (podmanClient: PodmanClient, name: string, signal?: AbortSignal) =>
  podmanClient
    .runAttached(options(name, signal), () => {}, signal)
    .exitCode.then(
      (code) => code,
      (error: unknown) => error as PodmanError,
    );
const failure = async (result: Promise<number | PodmanError>): Promise<PodmanError> => {
  const outcome = await result;
  if (typeof outcome === 'number') return expect.fail(`the session ran (exit ${outcome})`);
  return outcome;
};

describe('a failed pull, remembered', () => {
  it('ends the next session of the image at once with the same error, naming the earlier pull and the next one', {
    timeout: 20_000,
  }, async () => {
    const bin = podman('refused');
    const { podmanClient, clock } = client(bin);
    const first = await failure(run(podmanClient, 'agentd-a'));
    expect(first.code).toBe('IMAGE_PULL_FAILED');
    expect(pulls(bin)).toBe(1);

    clock.ms += 12_000;
    const second = await failure(run(podmanClient, 'agentd-b'));
    // The same classified error, made by no pull.
    expect(pulls(bin)).toBe(1);
    expect(second.code).toBe('IMAGE_PULL_FAILED');
    expect(second.message.startsWith(first.message)).toBe(true);
    expect(second.message).toContain('the remembered result of the pull made on this host 12 s ago');
    expect(second.message).toMatch(
      /the next pull is made by the first session after \d\d:\d\d:\d\d UTC \(in 18 s\)/,
    );
    // Each session still asked for its image first (`--pull never`): one `run` each.
    expect(calls(bin).filter((c) => c === 'run')).toHaveLength(2);

    // The window over: the next session pulls again.
    clock.ms += PULL_FAILURE_MEMORY_MS - 12_000;
    const third = await failure(run(podmanClient, 'agentd-c'));
    expect(pulls(bin)).toBe(2);
    expect(third.message).not.toContain('remembered');
  });

  it('remembers a tag the registry does not have, and a pull that outlasted pull_timeout', {
    timeout: 20_000,
  }, async () => {
    const unknown = podman('unknown');
    const a = client(unknown);
    expect((await failure(run(a.podmanClient, 'agentd-a'))).code).toBe('IMAGE_NOT_FOUND');
    const again = await failure(run(a.podmanClient, 'agentd-b'));
    expect(again.code).toBe('IMAGE_NOT_FOUND');
    expect(again.message).toContain('remembered result');
    expect(pulls(unknown)).toBe(1);

    const hang = podman('hang');
    const b = client(hang, 300);
    const timedOut = await failure(run(b.podmanClient, 'agentd-a'));
    expect(timedOut.code).toBe('PODMAN_TIMEOUT');
    expect(timedOut.message).toContain('Podman was still pulling image');
    const held = await failure(run(b.podmanClient, 'agentd-b'));
    expect(held.code).toBe('PODMAN_TIMEOUT');
    expect(held.message).toContain('(daemon.pull_timeout)');
    expect(held.message).toContain('remembered result');
    expect(pulls(hang)).toBe(1);
  });

  it('does not remember a host that cannot be reached: that is no failure of the image', {
    timeout: 20_000,
  }, async () => {
    const bin = podman('unreachable');
    const { podmanClient } = client(bin);
    expect((await failure(run(podmanClient, 'agentd-a'))).code).toBe('PODMAN_UNREACHABLE');
    expect((await failure(run(podmanClient, 'agentd-b'))).message).not.toContain('remembered');
    expect(pulls(bin)).toBe(2);
  });

  it('does not remember a pull cut short because every session waiting for it was stopped', {
    timeout: 20_000,
  }, async () => {
    const bin = podman('hang');
    const { podmanClient } = client(bin);
    const stop = new AbortController();
    const a = run(podmanClient, 'agentd-a', stop.signal);
    while (pulls(bin) === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    stop.abort();
    expect(await a).toBe(-1);
    // The next session pulls, and this pull fails: that one is remembered.
    answer(bin, 'refused');
    const b = await failure(run(podmanClient, 'agentd-b'));
    expect(b.code).toBe('IMAGE_PULL_FAILED');
    expect(b.message).not.toContain('remembered');
    expect(pulls(bin)).toBe(2);
  });

  it('is not asked by a session that finds the image present, and is over once it was found', {
    timeout: 20_000,
  }, async () => {
    const bin = podman('refused');
    const { podmanClient } = client(bin);
    await failure(run(podmanClient, 'agentd-a'));
    // The operator pulls it by hand: the next session runs, with one `podman run` and no pull.
    writeFileSync(`${bin}.image`, '');
    const before = calls(bin).length;
    expect(await run(podmanClient, 'agentd-b')).toBe(0);
    expect(calls(bin).slice(before)).toEqual(['run']);
    // Removed again, within the window: the failure found before the image was present is not repeated.
    unlinkSync(`${bin}.image`);
    answer(bin, 'ok');
    expect(await run(podmanClient, 'agentd-c')).toBe(0);
    expect(pulls(bin)).toBe(2);
  });

  it('creates the container of a host behind a connection with the same rule', {
    timeout: 20_000,
  }, async () => {
    const bin = podman('refused');
    const { podmanClient } = client(bin);
    const first = (await podmanClient
      .createContainer(options('agentd-a'))
      .catch((e: unknown) => e)) as PodmanError;
    expect(first.code).toBe('IMAGE_PULL_FAILED');
    const second = (await podmanClient
      .createContainer(options('agentd-b'))
      .catch((e: unknown) => e)) as PodmanError;
    expect(second.code).toBe('IMAGE_PULL_FAILED');
    expect(second.message).toContain('remembered result');
    expect(pulls(bin)).toBe(1);
  });

  it(`remembers at most ${PULL_FAILURES_MAX} images: the oldest is forgotten for a newer one`, {
    timeout: 60_000,
  }, async () => {
    const bin = podman('refused');
    const { podmanClient, clock } = client(bin);
    const images = Array.from(
      { length: PULL_FAILURES_MAX + 1 },
      (_, i) => `127.0.0.1:5000/agents/typo-${i}:1`,
    );
    for (let i = 0; i < images.length; i += 16) {
      await Promise.all(
        images.slice(i, i + 16).map((image) => podmanClient.pullImage(image).catch(() => undefined)),
      );
      clock.ms += 1;
    }
    expect(pulls(bin)).toBe(images.length);
    const log = () => calls(bin).filter((c) => c.startsWith('pull '));
    // The first batch's images were the oldest: one of them gave way to the last image.
    const again = await Promise.all(
      images.map((image) =>
        podmanClient.pullImage(image).then(
          () => expect.fail('pulled'),
          (error: unknown) => (error as PodmanError).message.includes('remembered result'),
        ),
      ),
    );
    expect(again.filter((remembered) => !remembered)).toHaveLength(1);
    expect(again.slice(16).every((remembered) => remembered)).toBe(true);
    expect(log()).toHaveLength(images.length + 1);
  });
});
