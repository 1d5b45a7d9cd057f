import { setFlagsFromString } from 'node:v8';

/**
 * V8's young generation while `agentd start` loads its modules. Loading allocates fast, and V8 doubles
 * its semi-spaces each time a scavenge finds much alive, up to 16 MB each, and keeps them until its
 * memory reducer finds the daemon without load (measured: some 20 to 30 s). Holding the growth factor
 * at 1 keeps them at their initial 1 MB until the daemon is up (idle RSS 88 → 76 MB); released then,
 * so sessions' output gets V8's growing young generation as before (held for good, the output path
 * took 16 % more CPU per MB). Growth is read at each scavenge: the flag works when set at run time (on
 * the command line Node 20 ignores it), and before the daemon's modules are imported.
 */
export function holdYoungGeneration(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}

/** V8's default growth again (2): called once the daemon is up. */
export function releaseYoungGeneration(): void {
  setFlagsFromString('--semi-space-growth-factor=2');
}
