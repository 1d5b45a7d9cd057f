import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type ContainerSummary,
  nameBatches,
  type PodmanClient,
  type PodmanPort,
  SECRET_REMOVE_BATCH,
} from '../../src/adapters/podman.js';
import { LABEL_AGENT, LABEL_HOST, LABEL_INSTANCE, LABEL_SESSION } from '../../src/constants.js';
import { reconcile } from '../../src/daemon/reconcile.js';
import { secretName } from '../../src/runner/names.js';
import { standInPodman } from '../helpers/stand-in-podman.js';

const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-batches-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A `podman` that logs each call's argument count and first words to calls.log, fails a call that names
 * a `bad` object, says "no such secret" for a `gone` one, and sleeps for a `slow` one (then writes
 * slow.done): a stand-in for the CLI, run through the real PodmanClient.
 */
function fakePodman(): { client: PodmanClient; calls: () => string[] } {
  const { bin, client } = standInPodman(
    dir,
    (self) => `echo "$# $1 $2" >> '${self}.log'
code=0
for a in "$@"; do
  case "$a" in
    *slow*) sleep 0.4; : > '${dir}/slow.done' ;;
    *gone*) echo "Error: no secret with name or id \\"$a\\": no such secret" >&2; code=1 ;;
    *bad*) echo "Error: something broke at $a" >&2; exit 125 ;;
  esac
done
exit $code
`,
  );
  const log = `${bin}.log`;
  writeFileSync(log, '');
  return { client, calls: () => readFileSync(log, 'utf8').split('\n').filter(Boolean) };
}

const names = (n: number, tag = 'x') => Array.from({ length: n }, (_, i) => `agentd-${tag}-${i}`);

describe('batches of names on a command line', () => {
  it('keep the order and stay within the count and the byte budget', () => {
    expect(nameBatches([], 3)).toEqual([]);
    expect(nameBatches(['a', 'b', 'c', 'd'], 3)).toEqual([['a', 'b', 'c'], ['d']]);
    // 'aaaa' + 1 byte for its separator: two fit in 10 bytes, not three.
    expect(nameBatches(['aaaa', 'bbbb', 'cccc'], 100, 10)).toEqual([['aaaa', 'bbbb'], ['cccc']]);
    // A name longer than the budget still goes, alone.
    expect(nameBatches(['x'.repeat(20), 'y'], 100, 10)).toEqual([['x'.repeat(20)], ['y']]);
    const many = names(10_000);
    const batches = nameBatches(many, Number.POSITIVE_INFINITY);
    expect(batches.flat()).toEqual(many);
    for (const batch of batches) expect(batch.join(' ').length).toBeLessThanOrEqual(128 * 1024);
  });
});

describe('PodmanClient removes many objects in batches', () => {
  it(`removes secrets ${SECRET_REMOVE_BATCH} to a call; a missing one counts as removed`, async () => {
    const { client, calls } = fakePodman();
    await client.removeSecrets([...names(SECRET_REMOVE_BATCH * 2 + 49), 'agentd-gone-1']);
    expect(calls()).toEqual([
      `${SECRET_REMOVE_BATCH + 3} secret rm`,
      `${SECRET_REMOVE_BATCH + 3} secret rm`,
      '53 secret rm',
    ]);
    await client.removeSecrets([]);
    expect(calls()).toHaveLength(3);
  });

  it('tries every batch when one fails, then throws the first failure', async () => {
    const { client, calls } = fakePodman();
    const list = names(SECRET_REMOVE_BATCH * 2 + 50);
    list[10] = 'agentd-bad-secret';
    await expect(client.removeSecrets(list)).rejects.toThrow(/something broke at agentd-bad-secret/);
    expect(calls()).toHaveLength(3);

    const containers = names(1200);
    containers[700] = 'agentd-bad-container';
    await expect(client.removeContainers(containers)).rejects.toThrow(/agentd-bad-container/);
    expect(calls().slice(3)).toEqual(['506 rm --force', '506 rm --force', '206 rm --force']);
  });

  it('ends its options before the names it is given: a name is never read as an option', async () => {
    const { bin, client } = standInPodman(dir, (self) => `printf '%s\\n' "$*" >> '${self}.log'\necho '[]'\n`);
    writeFileSync(`${bin}.log`, '');
    const name = '--cidfile=/proc/self/environ';
    await client.removeContainers([name]);
    await client.removeSecrets([name]);
    await client.stopContainer(name, 1);
    await client.inspectContainer(name).catch(() => undefined);
    const lines = readFileSync(`${bin}.log`, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(4);
    for (const line of lines) expect(line).toMatch(/ -- --cidfile=\/proc\/self\/environ$/);
  });

  it('never kills a secret removal mid-call: a cancel takes effect before the next batch', async () => {
    const { client, calls } = fakePodman();
    const list = names(SECRET_REMOVE_BATCH * 2);
    list[0] = 'agentd-slow-secret';
    const cancel = new AbortController();
    setTimeout(() => cancel.abort(new Error('daemon stopping')), 100);
    await expect(client.removeSecrets(list, cancel.signal)).rejects.toThrow(/daemon stopping/);
    expect(existsSync(join(dir, 'slow.done')), 'the batch in progress ran to its end').toBe(true);
    expect(calls()).toHaveLength(1);
  });
});

describe('reconcile', () => {
  const instance = 'f'.repeat(64);
  const other = 'e'.repeat(64);
  const session = (i: number) => i.toString(16).padStart(16, '0');
  const container = (i: number, state: string, labels: Record<string, string> = {}): ContainerSummary => ({
    Id: `id${i}`,
    Names: [`agentd-${instance.slice(0, 8)}-demo-${session(i)}`],
    State: state,
    Labels: { [LABEL_INSTANCE]: instance, [LABEL_SESSION]: session(i), [LABEL_AGENT]: 'demo', ...labels },
  });

  /** Only what reconcile uses; removals recorded, and failed with `fail` when set. */
  function port(
    containers: ContainerSummary[],
    secrets: Map<string, Record<string, string>>,
    fail: { containers?: boolean; secrets?: boolean } = {},
  ) {
    const removed = { containers: [] as string[], secrets: [] as string[] };
    const stub = {
      listContainers: async () => containers,
      listSecretNames: async () => [...secrets.keys(), 'somebody-elses-secret'],
      secretLabels: async (asked: string[]) => new Map(asked.map((n) => [n, secrets.get(n) ?? {}])),
      removeContainers: async (list: string[]) => {
        if (fail.containers) throw new Error('podman rm failed');
        removed.containers.push(...list);
      },
      removeSecrets: async (list: string[]) => {
        if (fail.secrets) throw new Error('podman secret rm failed');
        removed.secrets.push(...list);
      },
    };
    return { podman: stub as unknown as PodmanPort, removed };
  }

  const log = pino({ level: 'silent' });
  const ownSecret = (i: number) => secretName(instance, session(i), 0);
  const secrets = new Map<string, Record<string, string>>([
    ...Array.from({ length: 2000 }, (_, i) => [ownSecret(i), { [LABEL_INSTANCE]: instance }] as const),
    // Same 8-character prefix, another instance: left alone.
    [ownSecret(5000), { [LABEL_INSTANCE]: other }],
    // A session this daemon supervises, and one on another host: left alone.
    [ownSecret(5001), { [LABEL_INSTANCE]: instance }],
    [ownSecret(5002), { [LABEL_INSTANCE]: instance, [LABEL_HOST]: 'elsewhere' }],
  ]);
  const containers = [
    ...Array.from({ length: 500 }, (_, i) => container(i, 'exited')),
    container(600, 'running'),
    container(5001, 'exited'),
    container(5002, 'exited', { [LABEL_HOST]: 'elsewhere' }),
  ];
  const scope = { host: 'local', supervised: new Set([session(5001)]) };

  it('removes only its own dead containers and orphan secrets, thousands of them', async () => {
    const { podman, removed } = port(containers, secrets);
    const { summary, containers: seen } = await reconcile(podman, instance, log, undefined, scope);
    expect(summary).toEqual({ removedContainers: 500, removedSecrets: 2000, runningContainers: 1 });
    expect(removed.containers).toEqual(containers.slice(0, 500).map((c) => c.Names[0]));
    expect(removed.secrets).toEqual(Array.from({ length: 2000 }, (_, i) => ownSecret(i)));
    expect(seen.map((c) => c.Id)).toEqual([...containers.slice(0, 501).map((c) => c.Id)]);
  });

  it('leaves the dead containers of sessions it is told to keep for the plan, and passes them on', async () => {
    const { podman, removed } = port([container(1, 'exited'), container(2, 'exited')], new Map());
    const { summary, containers: seen } = await reconcile(podman, instance, log, undefined, {
      ...scope,
      keepDead: new Set([session(2)]),
    });
    expect(removed.containers).toEqual([container(1, 'exited').Names[0]]);
    expect(summary.removedContainers).toBe(1);
    expect(seen.map((c) => c.Id)).toEqual(['id1', 'id2']);
  });

  it('never passes on a container whose name agentd did not make: a host answers what it likes', async () => {
    const forged = [
      // A name that podman would read as an option: `rm` would send the daemon's environment to the host.
      { ...container(700, 'exited'), Names: ['--cidfile=/proc/self/environ'] },
      // Another session's name, an agent label that is no agent's name, no name at all.
      { ...container(701, 'running'), Names: [container(600, 'running').Names[0] as string] },
      container(702, 'exited', { [LABEL_AGENT]: '-x' }),
      { ...container(703, 'exited'), Names: [] },
    ];
    const { podman, removed } = port([container(1, 'exited'), ...forged], new Map());
    const { summary, containers: seen } = await reconcile(podman, instance, log, undefined, scope);
    expect(removed.containers).toEqual([container(1, 'exited').Names[0]]);
    expect(seen.map((c) => c.Id)).toEqual(['id1']);
    expect(summary.removedContainers).toBe(1);
  });

  it('still removes the secrets when the containers fail, and the other way round, then throws', async () => {
    const a = port(containers, secrets, { containers: true });
    await expect(reconcile(a.podman, instance, log, undefined, scope)).rejects.toThrow(/podman rm failed/);
    expect(a.removed.secrets).toHaveLength(2000);
    const b = port(containers, secrets, { secrets: true });
    await expect(reconcile(b.podman, instance, log, undefined, scope)).rejects.toThrow(
      /podman secret rm failed/,
    );
    expect(b.removed.containers).toHaveLength(500);
    // A container list that fails leaves the secrets' side to run to its end.
    const c = port(containers, secrets);
    c.podman.listContainers = async () => {
      throw new Error('podman ps failed');
    };
    await expect(reconcile(c.podman, instance, log, undefined, scope)).rejects.toThrow(/podman ps failed/);
    expect(c.removed.secrets).toHaveLength(2000);
  });

  it('removes the secrets while the containers are still being removed', async () => {
    const { podman, removed } = port(containers, secrets);
    let secretsStarted: () => void = () => {};
    const started = new Promise<void>((resolve) => {
      secretsStarted = resolve;
    });
    const removeSecrets = podman.removeSecrets.bind(podman);
    podman.removeSecrets = async (list) => {
      secretsStarted();
      return removeSecrets(list);
    };
    const removeContainers = podman.removeContainers.bind(podman);
    podman.removeContainers = async (list) => {
      // One after the other, this would never end: the test's timeout fails it.
      await started;
      return removeContainers(list);
    };
    await reconcile(podman, instance, log, undefined, scope);
    expect([removed.containers.length, removed.secrets.length]).toEqual([500, 2000]);
  }, 5000);
});
