import { defaultSocketPath } from '../config/paths.js';

/** --socket PATH, else $AGENTD_SOCKET, else the daemon's default path. */
export function resolveSocketPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return flag;
  if (env.AGENTD_SOCKET) return env.AGENTD_SOCKET;
  return defaultSocketPath(env, process.getuid?.() ?? 0);
}
