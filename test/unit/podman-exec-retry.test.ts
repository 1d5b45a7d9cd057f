/**
 * Reading an adopted container's secret copies (`podman exec`) through the real PodmanClient, with a
 * stand-in `podman`: runc's transient failure to enter the container is tried once more; any other
 * failure is not.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { PodmanClient } from '../../src/adapters/podman.js';
import { standInPodman } from '../helpers/stand-in-podman.js';

const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-exec-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A `podman` that fails its first call with `stderr` (exit 255), then prints one file, `token`. */
function failingOnce(stderr: string) {
  const { bin, client } = standInPodman(
    dir,
    (self) => `n=$(cat '${self}.count' 2>/dev/null || echo 0)
echo $((n + 1)) > '${self}.count'
if [ "$n" = 0 ]; then echo '${stderr}' >&2; exit 255; fi
printf '5 token\\nhello'
`,
  );
  return { client, calls: () => Number(readFileSync(`${bin}.count`, 'utf8')) };
}

describe('readContainerFiles', () => {
  it("tries once more when runc could not enter the container's namespaces", async () => {
    const { client, calls } = failingOnce(
      'Error: OCI runtime error: runc: exec failed: unable to start container process: error executing setns process: exit status 1',
    );
    const files = await client.readContainerFiles('c', '/run/secrets/agentd');
    expect(calls()).toBe(2);
    expect(files.get('token')?.toString()).toBe('hello');
  });

  it('does not try again after any other failure', async () => {
    const { client, calls } = failingOnce('Error: no container with name or ID "c" found: no such container');
    await expect(client.readContainerFiles('c', '/run/secrets/agentd')).rejects.toThrow('no such container');
    expect(calls()).toBe(1);
  });

  it.each([
    ['fails partway', "printf '30 token\\npartial-secret-value'; exit 4"],
    ['prints what is not a file stream', "printf '99 token\\npartial-secret-value'"],
  ])('keeps no copy of what a read printed when it %s', async (_, script) => {
    const { client } = standInPodman(dir, () => script);
    const error = await client.readContainerFiles('c', '/run/secrets/agentd').then(
      () => expect.fail('the read succeeded'),
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'PODMAN_FAILED' });
    expect((error as Error).cause).toBeUndefined();
    expect(inspect(error, { depth: 10, showHidden: true })).not.toContain('partial-secret');
  });
});

describe('readSecretCopies (an exited container: the copies Podman keeps in its directory)', () => {
  /** A container directory with `secrets/` holding `files`, and a `podman inspect` that names `secrets`. */
  function container(secrets: string[], files: Record<string, string>, staticDir?: string) {
    const userdata = mkdtempSync(join(dir, 'userdata-'));
    mkdirSync(join(userdata, 'secrets'));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(userdata, 'secrets', name), text);
    const inspected = [
      {
        Id: 'c',
        Name: 'c',
        State: { Status: 'exited', Running: false, ExitCode: 0 },
        Config: {
          Labels: {},
          Secrets: secrets.map((Name) => ({ Name, ID: 'x', UID: 0, GID: 0, Mode: 256 })),
        },
        StaticDir: staticDir ?? userdata,
      },
    ];
    const { client } = standInPodman(dir, () => `cat <<'EOF'\n${JSON.stringify(inspected)}\nEOF\n`);
    // As the runner does it: the container as inspected (the schema reads StaticDir and Secrets).
    const read = async () => {
      const info = await client.inspectContainer('c');
      if (info === undefined) throw new Error('the stand-in printed no container');
      return client.readSecretCopies(info);
    };
    return { read, userdata };
  }

  it('reads each secret the container was created with, by name', async () => {
    const { read } = container(['agentd-a-0123456789abcdef-0'], { 'agentd-a-0123456789abcdef-0': 'v4lue' });
    const copies = await read();
    expect([...copies].map(([n, b]) => [n, b.toString()])).toEqual([
      ['agentd-a-0123456789abcdef-0', 'v4lue'],
    ]);
  });

  it.each([
    ['a copy is missing', ['s-0'], {}, undefined, /ENOENT/],
    ['a copy is a symbolic link', ['s-0'], 'link', undefined, /ELOOP/],
    ['a secret name is a path', ['../s-0'], {}, undefined, /not a file name/],
    ['Podman names no directory', ['s-0'], { 's-0': 'v' }, 'relative/dir', /did not say where/],
  ] as const)(
    'fails when %s (an adopted session then withholds its output)',
    async (_, names, files, staticDir, why) => {
      const { read, userdata } = container([...names], files === 'link' ? {} : files, staticDir);
      if (files === 'link') {
        writeFileSync(join(userdata, 'elsewhere'), 'v');
        symlinkSync(join(userdata, 'elsewhere'), join(userdata, 'secrets', 's-0'));
      }
      await expect(read()).rejects.toThrow(why);
    },
  );

  it("refuses a remote host's container: its copies are on that host", async () => {
    const remote = new PodmanClient({ bin: '/bin/false', url: 'ssh://core@127.0.0.1/run/podman.sock' });
    const info = {
      Id: 'c',
      Name: 'c',
      State: { Status: 'exited', Running: false, ExitCode: 0 },
      Config: { Secrets: [{ Name: 's-0' }] },
      StaticDir: '/var/lib/containers/storage/overlay-containers/c/userdata',
    };
    await expect(remote.readSecretCopies(info)).rejects.toThrow(/on its host, not on this machine/);
  });
});
