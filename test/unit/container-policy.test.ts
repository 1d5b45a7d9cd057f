import { describe, expect, it } from 'vitest';
import { hardeningArgs } from '../../src/adapters/podman.js';
import { defaultResources, parseSize } from '../../src/config/resources.js';
import type { AgentConfig } from '../../src/config/types.js';
import { findCommandEnd, outOfMemoryReason } from '../../src/runner/command-end.js';
import {
  ambientCapabilities,
  containerPolicy,
  SETUP_CAPABILITIES,
} from '../../src/runner/container-policy.js';
import { SETUP_SCRIPT } from '../../src/runner/setup-script.js';
import { assembleSession } from '../../src/sessions/assemble.js';
import { planRun } from '../../src/sessions/run-plan.js';
import { AGENTS, request } from '../helpers/machine-fakes.js';

const MARKER = '@@agentd-0123456789abcdef@@';

describe('containerPolicy → podman flags', () => {
  it('drops every capability but the setup step four, forbids new privileges and bounds every writable place', () => {
    const args = hardeningArgs(containerPolicy({ agent: 'rev' }));
    expect(args).toEqual([
      '--memory',
      String(2 * 1024 ** 3),
      '--memory-swap',
      String(2 * 1024 ** 3),
      '--pids-limit',
      '4096',
      '--cap-drop',
      'all',
      '--cap-add',
      'CHOWN,SETUID,SETGID,KILL',
      '--security-opt',
      'no-new-privileges',
      '--tmpfs',
      `/home/rev:rw,exec,nosuid,nodev,size=${1024 ** 3},mode=0755`,
      '--tmpfs',
      `/tmp:rw,exec,nosuid,nodev,size=${1024 ** 3},mode=1777`,
      '--tmpfs',
      `/var/tmp:rw,exec,nosuid,nodev,size=${1024 ** 3},mode=1777`,
      '--tmpfs',
      `/run/lock:rw,exec,nosuid,nodev,size=${1024 ** 3},mode=1777`,
      '--tmpfs',
      `/agentd/out:rw,exec,nosuid,nodev,size=${64 * 1024 ** 2},mode=0700`,
      // An image's VOLUME: not an anonymous volume on the host's disk, which podman rm leaves behind.
      '--image-volume',
      'tmpfs',
    ]);
  });

  it('passes the agent limits and cap_add', () => {
    const resources = {
      ...defaultResources(),
      memory: parseSize('512m') as NonNullable<ReturnType<typeof parseSize>>,
      memorySwap: parseSize('1g') as NonNullable<ReturnType<typeof parseSize>>,
      cpus: 1.5,
      pids: 100,
    };
    const args = hardeningArgs(containerPolicy({ agent: 'rev', resources, capAdd: ['NET_RAW', 'KILL'] }));
    expect(args.slice(0, 8)).toEqual([
      '--memory',
      String(512 * 1024 ** 2),
      '--memory-swap',
      String(1024 ** 3),
      '--cpus',
      '1.5',
      '--pids-limit',
      '100',
    ]);
    expect(args).toContain('CHOWN,SETUID,SETGID,KILL,NET_RAW');
    expect(ambientCapabilities(['NET_RAW', 'SYS_PTRACE'])).toBe('+net_raw,+sys_ptrace');
    expect(ambientCapabilities([])).toBeUndefined();
  });

  it('gives the local Podman the profile that refuses user namespaces, and leaves a url host its default', () => {
    const profile = '/var/lib/agentd/seccomp.json';
    const args = hardeningArgs(containerPolicy({ agent: 'rev', seccompProfile: profile }));
    const at = args.indexOf('no-new-privileges');
    expect(args.slice(at - 1, at + 3)).toEqual([
      '--security-opt',
      'no-new-privileges',
      '--security-opt',
      `seccomp=${profile}`,
    ]);
    const session = assembleSession(request('0123456789abcdef', 'norepo'), AGENTS[1] as AgentConfig, {
      credentials: [],
    });
    const settings = {
      instanceId: 'e'.repeat(32),
      stopGraceMs: 1000,
      workDir: '/w',
      seccompProfile: profile,
      connectedHosts: ['near'],
      copyHosts: ['far'],
    };
    const seccompOf = (host?: string) =>
      hardeningArgs(planRun(session, settings, host).container).filter((a) => a.startsWith('seccomp='));
    expect(seccompOf()).toEqual([`seccomp=${profile}`]);
    expect(seccompOf('local')).toEqual([`seccomp=${profile}`]);
    // Podman reads the path on the engine's machine: a host behind a url keeps its engine's default.
    expect(seccompOf('near')).toEqual([]);
    expect(seccompOf('far')).toEqual([]);
    // No profile (none could be derived at start): Podman's default, as before.
    const { seccompProfile: _, ...without } = settings;
    expect(hardeningArgs(planRun(session, without).container).join(' ')).not.toContain('seccomp');
  });

  it('turns core dumps off, hard limit too, before anything runs as the agent', () => {
    const lines = SETUP_SCRIPT.split('\n');
    const off = lines.indexOf('ulimit -c 0');
    expect(off).toBeGreaterThan(0);
    expect(off).toBeLessThan(lines.findIndex((line) => line.includes('useradd ')));
    // dash and bash set both limits when given neither -S nor -H: the agent cannot raise it again.
    expect(lines.some((line) => /ulimit -S/.test(line))).toBe(false);
  });

  it('says why the setup step keeps each capability', () => {
    for (const why of Object.values(SETUP_CAPABILITIES)) expect(why.length).toBeGreaterThan(20);
  });
});

describe('the setup step report', () => {
  it('is found alone on a line or after output that lacked a newline', () => {
    expect(findCommandEnd(MARKER, `${MARKER} ended 137 1`)).toEqual({
      before: '',
      end: { status: 137, oomKills: 1 },
    });
    expect(findCommandEnd(MARKER, `partial${MARKER} ended 0 0`)).toEqual({
      before: 'partial',
      end: { status: 0, oomKills: 0 },
    });
  });

  it('is not found without the marker, with another marker or in another shape', () => {
    expect(findCommandEnd(MARKER, 'ended 137 1')).toBeUndefined();
    expect(findCommandEnd(MARKER, '@@agentd-ffffffffffffffff@@ ended 137 1')).toBeUndefined();
    expect(findCommandEnd(MARKER, `${MARKER} ended 137 1 extra`)).toBeUndefined();
    expect(findCommandEnd(MARKER, `${MARKER} phase running`)).toBeUndefined();
    expect(findCommandEnd('', ' ended 1 1')).toBeUndefined();
  });

  it('names out of memory only when the OOM killer struck', () => {
    expect(outOfMemoryReason({ status: 137, oomKills: 1 }, '2g')).toBe('out of memory (limit 2g)');
    expect(outOfMemoryReason({ status: 137, oomKills: 0 }, '2g')).toBeUndefined();
    expect(outOfMemoryReason(undefined, '2g')).toBeUndefined();
  });
});
