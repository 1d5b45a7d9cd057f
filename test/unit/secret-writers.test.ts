/**
 * The `podman secret create` commands a killed daemon left running (src/adapters/secret-writers.ts): found
 * in a stand-in /proc by their argv, parent, user and pid namespace, and waited for before reconciliation
 * lists the secrets.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { leftSecretCreates, settleLeftSecretCreates } from '../../src/adapters/secret-writers.js';

const proc = mkdtempSync(join(tmpdir(), 'agentd-unit-proc-'));
afterAll(() => rmSync(proc, { recursive: true, force: true }));

const SELF = 100;
/** The daemon's user. */
const UID = 0;
const HOST_PIDS = 'pid:[4026531836]';
const PREFIX = 'agentd-0cbb0c70-';

function processIn(
  pid: number,
  parent: number,
  argv: string[],
  name = 'podman',
  { uid = UID, pids = HOST_PIDS }: { uid?: number; pids?: string } = {},
): void {
  mkdirSync(join(proc, String(pid), 'ns'), { recursive: true });
  writeFileSync(join(proc, String(pid), 'cmdline'), `${argv.join('\0')}\0`);
  writeFileSync(join(proc, String(pid), 'stat'), `${pid} (${name}) S ${parent} ${pid} ${pid} 0 -1`);
  writeFileSync(join(proc, String(pid), 'status'), `Name:\t${name}\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\n`);
  symlinkSync(pids, join(proc, String(pid), 'ns', 'pid'));
}

describe('leftSecretCreates', () => {
  it("finds the instance's secret creates this process did not start, and nothing else", () => {
    const create = [
      'podman',
      'secret',
      'create',
      '--label',
      'io.agentd.instance=x',
      `${PREFIX}8905ab6e396c4f70-0`,
      '-',
    ];
    processIn(201, 1, create);
    // Over a connection, and a command name with a space and parentheses in it.
    processIn(202, 1, ['podman', '--url', 'ssh://h', ...create.slice(1)], 'pod man) x');
    processIn(203, SELF, create); // this daemon's own, and its podman under the shell it runs it in
    processIn(208, 209, create);
    processIn(209, SELF, ['/bin/sh', '-c', 'cat | exec "$0" "$@"', ...create]);
    processIn(204, 1, ['podman', 'secret', 'rm', '--', `${PREFIX}8905ab6e396c4f70-0`]);
    processIn(205, 1, ['podman', 'secret', 'create', 'agentd-ffffffff-8905ab6e396c4f70-0', '-']);
    processIn(206, 1, ['sleep', '3600']);
    mkdirSync(join(proc, '207')); // gone while it was read
    mkdirSync(join(proc, 'self'));
    // A session's processes name one too: an agent's (uid 61000), and one of the daemon's uid in the
    // container's pid namespace (a rootless container's root). Neither is a daemon's podman.
    processIn(210, 1, ['bash', '-c', 'sleep 600; :', '_', ...create.slice(1)], 'bash', { uid: 61000 });
    processIn(211, 1, ['bash', '-c', 'sleep 600; :', '_', ...create.slice(1)], 'bash', {
      pids: 'pid:[4026532999]',
    });
    mkdirSync(join(proc, String(SELF), 'ns'), { recursive: true });
    symlinkSync(HOST_PIDS, join(proc, String(SELF), 'ns', 'pid'));
    expect(leftSecretCreates(PREFIX, SELF, proc, UID).sort()).toEqual([201, 202]);
    expect(leftSecretCreates(PREFIX, SELF, join(proc, 'missing'), UID)).toEqual([]);
  });
});

describe('settleLeftSecretCreates', () => {
  it('waits until none runs, and looks no more when none ran', async () => {
    let left = 2;
    let looks = 0;
    const find = () => {
      looks++;
      return Array.from({ length: left > 0 ? left-- : 0 }, (_, i) => i);
    };
    expect(await settleLeftSecretCreates(PREFIX, 60_000, undefined, find)).toBe(2);
    expect(left).toBe(0);
    looks = 0;
    const none = () => {
      looks++;
      return [];
    };
    expect(await settleLeftSecretCreates(PREFIX, 60_000, undefined, none)).toBe(0);
    expect(looks).toBe(1);
  });

  it('stops waiting at its bound for a create that never ends', async () => {
    expect(await settleLeftSecretCreates(PREFIX, 0, undefined, () => [1])).toBe(1);
  });
});
