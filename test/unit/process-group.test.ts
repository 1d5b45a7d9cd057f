/** The test helpers' endProcessGroup: a crashed daemon's group ends, but podman secret writes finish. */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { endProcessGroup, makeTempDir, track } from '../helpers/resources.js';

it('kills the group at once except a podman secret command, which it lets finish', async () => {
  const dir = makeTempDir('agentd-unit-pgroup-');
  // A binary named podman (a copy of bash) running `secret create`: what the helper must not cut short.
  // It waits and writes with builtins only: a `sleep` or `touch` child would be a separate process,
  // rightly killed (a `touch` caught by the helper's poll left no file, 1 run in 8 under load).
  const podman = join(dir, 'podman');
  copyFileSync('/bin/bash', podman);
  const base = join(dir, 'x');
  const script = 'mkfifo "$0.fifo"; : > "$0.started"; read -t 1 <> "$0.fifo"; : > "$0.written"';
  // Tracked: a test that fails before endProcessGroup would otherwise leave the group (a sleep 300) behind.
  const leader = track.process(
    spawn('/bin/sh', ['-c', `"${podman}" -c '${script}' "${base}" secret create & sleep 300 & wait`], {
      detached: true,
      stdio: 'ignore',
    }),
  );
  const exited = new Promise((resolve) => leader.once('exit', (_, signal) => resolve(signal)));
  while (!existsSync(`${base}.started`)) await new Promise((r) => setTimeout(r, 20));
  await endProcessGroup(leader.pid as number);
  expect(await exited).toBe('SIGKILL');
  // The secret command was not killed: it finished what it was writing; the group is gone.
  expect(existsSync(`${base}.written`)).toBe(true);
});
