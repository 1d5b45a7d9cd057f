import { isAbsolute, join } from 'node:path';

/**
 * Default locations. Pure: the environment, uid and home directory are parameters so tests can vary them.
 */

/** The XDG spec says relative values must be ignored, as if unset. */
function xdgDir(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  return value !== undefined && isAbsolute(value) ? value : undefined;
}

export function defaultSocketPath(env: NodeJS.ProcessEnv, uid: number): string {
  if (uid === 0) return '/run/agentd/agentd.sock';
  const runtime = xdgDir(env, 'XDG_RUNTIME_DIR');
  return runtime !== undefined ? join(runtime, 'agentd', 'agentd.sock') : `/tmp/agentd-${uid}/agentd.sock`;
}

export function defaultStateDir(env: NodeJS.ProcessEnv, uid: number, home: string): string {
  if (uid === 0) return '/var/lib/agentd';
  return join(xdgDir(env, 'XDG_STATE_HOME') ?? join(home, '.local', 'state'), 'agentd');
}

/**
 * Config files to try, in order. An explicit --config or AGENTD_CONFIG is the only candidate: falling back to
 * another file would silently run with settings the operator did not ask for. Empty values count as unset.
 */
export function configSearchPath(opts: { flag?: string; env: NodeJS.ProcessEnv; home: string }): string[] {
  if (opts.flag !== undefined && opts.flag !== '') return [opts.flag];
  const fromEnv = opts.env.AGENTD_CONFIG;
  if (fromEnv !== undefined && fromEnv !== '') return [fromEnv];
  const configHome = xdgDir(opts.env, 'XDG_CONFIG_HOME') ?? join(opts.home, '.config');
  return [join(configHome, 'agentd', 'agentd.yaml'), '/etc/agentd/agentd.yaml'];
}
