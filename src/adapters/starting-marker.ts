import { lstatSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * A daemon that is starting has no socket yet: it reconciles Podman before it binds one (a minute and
 * more after a crash that left thousands of objects). Meanwhile `<socket>.starting` holds its pid, so
 * that `agentd status` says it is starting instead of "no daemon answers" (and a health check does not
 * take it for dead, nor an operator start a second one). Written by the daemon once it holds its pid
 * file, removed once the socket is bound and at its exit; a marker whose pid is gone is ignored.
 */
export function startingMarkerPath(socketPath: string): string {
  return `${socketPath}.starting`;
}

/**
 * The pid of the daemon starting on socketPath, or undefined: no marker, one someone other than root or
 * the caller made or could have replaced (in a directory they may write), not a pid, or a process gone.
 */
export function startingDaemonPid(
  socketPath: string,
  uid: number = process.getuid?.() ?? -1,
): number | undefined {
  const path = startingMarkerPath(socketPath);
  const trusted = (owner: number) => owner === 0 || owner === uid;
  try {
    const file = lstatSync(path);
    if (!file.isFile() || !trusted(file.uid) || file.size > 64) return undefined;
    const dir = lstatSync(dirname(path));
    if (!dir.isDirectory() || !trusted(dir.uid) || (dir.mode & 0o022) !== 0) return undefined;
    const text = readFileSync(path, 'utf8').trim();
    if (!/^[1-9][0-9]{0,9}$/.test(text)) return undefined;
    const pid = Number(text);
    return alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // Another user's process (root's daemon, asked by a user who may read its marker): alive.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
