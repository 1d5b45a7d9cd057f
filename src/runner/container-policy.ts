import type { CreateContainerOptions } from '../adapters/podman.js';
import { OUTPUT_TARGET } from '../config/mounts.js';
import { defaultResources } from '../config/resources.js';
import type { Resources } from '../config/types.js';

/**
 * What the root setup step needs, and nothing more: every other capability is dropped from the
 * container (`--cap-drop all`), and the agent's command runs with none (it is started by gosu or
 * setpriv as an ordinary user, under no-new-privileges, so no setuid binary or file capability can
 * give one back).
 */
export const SETUP_CAPABILITIES: Readonly<Record<string, string>> = {
  CHOWN: "hand the agent's user its home directory (and the files copied from /etc/skel)",
  SETUID: "drop to the agent's user (gosu or setpriv)",
  SETGID: "drop to the agent's group and set its supplementary groups",
  KILL: "forward stop signals to the agent's command and see whether it still runs: it belongs to another user",
};

/**
 * Where the agent's user can write: each is a tmpfs of the session's `disk` size, so nothing the agent
 * writes reaches the host's disk, and each counts against the container's memory limit. /run/lock is
 * world-writable in Debian-based images.
 */
export function writablePaths(agent: string): string[] {
  return [`/home/${agent}`, '/tmp', '/var/tmp', '/run/lock'];
}

/**
 * Limits and hardening of a session container, as options of the podman adapter. `seccompProfile`: the
 * profile file that refuses user namespaces (adapters/seccomp-profile.ts), given for the local Podman
 * only (a remote engine would look for the path on its own machine); without it Podman's default applies.
 */
export function containerPolicy(spec: {
  agent: string;
  resources?: Resources;
  capAdd?: string[];
  seccompProfile?: string;
}): Pick<CreateContainerOptions, 'limits' | 'capAdd' | 'noNewPrivileges' | 'seccompProfile' | 'tmpfs'> {
  const resources = spec.resources ?? defaultResources();
  const capAdd = [...new Set([...Object.keys(SETUP_CAPABILITIES), ...(spec.capAdd ?? [])])];
  return {
    limits: {
      memoryBytes: resources.memory.bytes,
      memorySwapBytes: resources.memorySwap.bytes,
      pids: resources.pids,
      ...(resources.cpus === undefined ? {} : { cpus: resources.cpus }),
    },
    capAdd,
    noNewPrivileges: true,
    ...(spec.seccompProfile === undefined ? {} : { seccompProfile: spec.seccompProfile }),
    tmpfs: [
      ...writablePaths(spec.agent).map((path, i) => ({
        path,
        bytes: resources.disk.bytes,
        // The home is handed to the agent's user by the setup step; the others are shared, sticky.
        mode: i === 0 ? '0755' : '1777',
      })),
      // The output directory: handed to the agent's user by the setup step, archived when it ends.
      { path: OUTPUT_TARGET, bytes: resources.output.bytes, mode: '0700' },
    ],
  };
}

/** The capabilities the agent's command gets, as setpriv reads them (`+net_raw,+sys_ptrace`). */
export function ambientCapabilities(capAdd: readonly string[] | undefined): string | undefined {
  if (capAdd === undefined || capAdd.length === 0) return undefined;
  return capAdd.map((c) => `+${c.toLowerCase()}`).join(',');
}
