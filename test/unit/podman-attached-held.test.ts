/**
 * A podman whose output streams into the daemon's sockets (`run`, `start --attach`, `logs`) that exits
 * while something it started still holds those sockets open: the attachment used to wait for that
 * process for ever (the session stayed `running` after its container had exited, until its own
 * deadline, and a cancel could not end it: podman, the only process it signals, was gone).
 * Without --force, `agentd stop` waited for that session as long.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PodmanClient } from '../../src/adapters/podman.js';

const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-held-'));
/** The stand-ins written: each leaves the pid of the child it left behind in `${bin}.child`. */
const bins: string[] = [];
afterAll(() => {
  for (const bin of bins) {
    try {
      process.kill(Number(readFileSync(`${bin}.child`, 'utf8')), 'SIGKILL');
    } catch {
      // Gone already, or never started.
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

/** A podman that prints, leaves a child holding its stdout and stderr for 60 s, and exits with `code`. */
function heldPodman(name: string, code: number): string {
  const bin = join(dir, name);
  const script = `#!/bin/sh
echo printed
echo said >&2
sleep 60 &
echo $! > '${bin}.child'
exit ${code}
`;
  writeFileSync(bin, script, { mode: 0o755 });
  bins.push(bin);
  return bin;
}

describe('an attached podman that exited while something it started holds its output', () => {
  it.each([
    [
      'start --attach',
      (c: PodmanClient, on: Parameters<PodmanClient['startAttached']>[1], s?: AbortSignal) =>
        c.startAttached('c', on, s),
    ],
    [
      'logs --follow',
      (c: PodmanClient, on: Parameters<PodmanClient['startAttached']>[1], s?: AbortSignal) =>
        c.followLogs('c', undefined, on, s),
    ],
  ])(
    '%s: ends with its exit code and its output, the bound after its exit, saying what held it',
    { timeout: 20_000 },
    async (what, attach) => {
      const bin = heldPodman(`podman-${what.replace(/\W/g, '')}`, 3);
      const warnings: { fields: Record<string, unknown>; message: string }[] = [];
      const client = new PodmanClient({
        bin,
        timeoutMs: 10_000,
        outputAfterExitMs: 300,
        warn: (fields, message) => warnings.push({ fields, message }),
      });
      const lines: string[] = [];
      const began = Date.now();
      const run = attach(client, (text, _end, stream) => lines.push(`${stream} ${text}`));
      const code = await run.exitCode;
      expect(code).toBe(3);
      expect(Date.now() - began).toBeLessThan(5000);
      expect(lines.sort()).toEqual(['stderr said', 'stdout printed']);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.fields).toMatchObject({ event: 'podman.output_held' });
      expect(warnings[0]?.message).toMatch(/podman exited .* its output stayed open 0\.3 s after/);
    },
  );
  it('a consumer that holds the output back past the bound after its exit still gets all of it', {
    timeout: 20_000,
  }, async () => {
    // What the sockets hold: podman exits while most of it waits there, unread, behind the consumer.
    const bin = join(dir, 'podman-paused');
    writeFileSync(
      bin,
      `#!/bin/sh
sleep 60 &
echo $! > '${bin}.child'
seq 1 30000
exit 0
`,
      { mode: 0o755 },
    );
    bins.push(bin);
    const warnings: string[] = [];
    const client = new PodmanClient({
      bin,
      timeoutMs: 10_000,
      outputAfterExitMs: 300,
      warn: (_fields, message) => warnings.push(message),
    });
    let lines = 0;
    let last = '';
    let held = false;
    const run = client.startAttached('c', (text) => {
      lines++;
      last = text;
      if (held) return;
      held = true;
      run.pause();
      setTimeout(() => run.resume(), 1500);
    });
    expect(await run.exitCode).toBe(0);
    expect(lines).toBe(30_000);
    expect(last).toBe('30000');
    expect(warnings).toHaveLength(1);
  });
});
