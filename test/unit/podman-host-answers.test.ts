/**
 * What a Podman host answers is not agentd's to trust in size: a remote host's Podman prints its engine's
 * error as the engine sent it (measured: a 3 MB message came out whole on stderr). The error agentd makes
 * of it, which goes to the log, `agentd hosts` and records, stays short; the call holds a bounded stderr.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { classifyPodmanFailure, PodmanError } from '../../src/adapters/podman-errors.js';
import { standInPodman } from '../helpers/stand-in-podman.js';

/** What an error may repeat of stderr: four lines of 500 characters, and its own words. */
const MESSAGE_MAX = 2_500;
/** PODMAN_STDERR_MAX_BYTES (podman.ts), as written there. */
const STDERR_MAX = 1024 * 1024;

const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-answers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a host that answers with megabytes', () => {
  it('makes an error of a bounded size, each of its last lines cut', () => {
    const huge = `Error: ${'E'.repeat(2_000_000)}`;
    for (const stderr of [huge, `${huge}\n${huge}\n${huge}\n${huge}\n${huge}`]) {
      const error = classifyPodmanFailure({
        operation: 'list containers',
        argv: ['ps'],
        exitCode: 125,
        stderr,
      });
      expect(error.message.length).toBeLessThan(MESSAGE_MAX);
      expect(error.message).toMatch(/^list containers failed \(exit 125\): Error: EEE+…/);
    }
    // Unreachable hosts are still recognised, and named in few words.
    const unreachable = classifyPodmanFailure({
      operation: 'probe the host',
      argv: ['version'],
      exitCode: 125,
      stderr: `Error: unable to connect to Podman socket: ${'x'.repeat(1_000_000)}`,
    });
    expect(unreachable.code).toBe('PODMAN_UNREACHABLE');
    expect(unreachable.message.length).toBeLessThan(1_000);
  });

  it('keeps at most 1 MiB of what a call printed on stderr', async () => {
    const { client } = standInPodman(
      dir,
      () => `printf 'Error: ' >&2; head -c 5000000 /dev/zero | tr '\\0' E >&2; exit 125\n`,
    );
    const error = await client.listContainers({}).then(
      () => expect.fail('the call succeeded'),
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PodmanError);
    expect((error as PodmanError).stderr.length).toBeLessThanOrEqual(STDERR_MAX);
    expect((error as PodmanError).message.length).toBeLessThan(1_000);
  });

  it("reads a probe's answer up to a bound, and shows only a version as the host's version", async () => {
    const probe = (json: string) =>
      standInPodman(dir, () => `cat <<'EOF'\n${json}\nEOF\n`).client.probe(5_000);
    const server = (version: unknown) =>
      JSON.stringify({ Client: { Version: '4.3.1' }, Server: { Version: version } });
    expect(await probe(server('4.9.4-rhel'))).toBe('4.9.4-rhel');
    expect(await probe(server('V'.repeat(10_000)))).toBe('unknown');
    expect(await probe(server('4.3.1\u001b]0;owned\u0007'))).toBe('unknown');
    expect(await probe(server({ nested: true }))).toBe('unknown');
    const { client } = standInPodman(
      dir,
      () => `printf '{"Server":{"Version":"'; head -c 5000000 /dev/zero | tr '\\0' V; printf '"}}'\n`,
    );
    const error = await client.probe(5_000).then(
      (version) => expect.fail(`the probe read ${version.length} characters`),
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PodmanError);
    expect((error as PodmanError).message).toContain('larger than any Podman gives');
  });
});
