import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { AgentdError } from '../errors.js';

export interface PidFileClaim {
  path: string;
  /** Set when a pid file of a dead process was taken over. */
  stalePid?: number;
  release(): void;
}

/** Claims the pid file exclusively: one daemon per instance. */
export function claimPidFile(path: string): PidFileClaim {
  let stalePid: number | undefined;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return {
        path,
        ...(stalePid === undefined ? {} : { stalePid }),
        release: () => {
          if (readPid(path) === process.pid) rmSync(path, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new AgentdError('INTERNAL', `cannot create pid file ${path}: ${(error as Error).message}`, {
          operation: 'claim pid file',
          cause: error,
        });
      }
      const pid = readPid(path);
      if (pid !== undefined && pid !== process.pid && isAlive(pid)) {
        throw new AgentdError(
          'DAEMON_RUNNING',
          `another agentd (pid ${pid}) is already running for this socket and state dir (pid file ${path}); stop it first (kill ${pid}) or give this one another daemon.state_dir`,
          { operation: 'claim pid file' },
        );
      }
      stalePid = pid ?? -1;
      rmSync(path, { force: true });
    }
  }
  throw new AgentdError('INTERNAL', `cannot claim pid file ${path}: another process keeps recreating it`);
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isFinite(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
