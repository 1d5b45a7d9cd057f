/**
 * Reading an adopted container's secret copies (`podman exec`) through the real PodmanClient, with a
 * stand-in `podman`: runc's transient failure to enter the container is tried once more; any other
 * failure is not.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
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
