import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import { refusalFix, resolveSource, unsetVariableFix } from '../adapters/credentials.js';
import { ownDirProblem } from '../adapters/fs-checks.js';
import { describeListen, isLoopback } from '../config/http.js';
import type { CredentialSource, HttpSettings, Settings } from '../config/types.js';
import { errorMessage } from '../errors.js';
import { unpresentableToken } from '../http/auth.js';
import { loadTls } from '../http/tls.js';
import { EMPTY_SECRET } from '../sessions/notification.js';
import type { CheckResult } from './check-result.js';

/**
 * `agentd doctor`'s checks of what start would otherwise find only when it opens the HTTP API or
 * sends the first notification: token and webhook-secret sources, the TLS pair, the listen address.
 * Values are resolved and dropped, never shown.
 */

/** Shorter bearer tokens are within reach of guessing over the network. */
const MIN_TOKEN_BYTES = 16;

export async function checkHttpAndNotify(settings: Settings, env: NodeJS.ProcessEnv): Promise<CheckResult[]> {
  const http = settings.daemon.http;
  return [...(http === undefined ? [] : await checkHttp(http, env)), ...(await checkNotify(settings, env))];
}

async function checkHttp(http: HttpSettings, env: NodeJS.ProcessEnv): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const token of http.tokens) {
    results.push(
      await checkSource(`http token ${token.name}`, token.source, env, (value) => {
        // Start refuses such a token (Tokens.resolve): the same words here.
        const unusable = unpresentableToken(token.source, value);
        if (unusable !== undefined) return { status: 'fail', ...unusable };
        return value.length < MIN_TOKEN_BYTES
          ? {
              status: 'warn',
              message: `${token.source.raw} resolves to only ${value.length} byte(s); a short token can be guessed`,
              fix: `Use at least ${MIN_TOKEN_BYTES} random bytes, e.g. \`openssl rand -hex 32\``,
            }
          : undefined;
      }),
    );
  }
  if (http.tls !== undefined) results.push(checkTls(http.tls));
  else if (!isLoopback(http.listen)) {
    results.push({
      check: 'http listen',
      status: 'warn',
      message: `${describeListen(http.listen)} is not loopback and has no TLS: bearer tokens would cross the network in clear`,
      fix: 'Set daemon.http.tls (cert: and key:), or listen on 127.0.0.1 or a unix: socket',
    });
  }
  results.push(await checkListen(http));
  return results;
}

async function checkNotify(settings: Settings, env: NodeJS.ProcessEnv): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const targets = [
    ...settings.daemon.notify.map((target, i) => ({ where: `daemon.notify[${i}]`, target })),
    ...settings.agents.flatMap((agent) =>
      agent.notify.map((target, i) => ({ where: `${agent.name} notify[${i}]`, target })),
    ),
  ];
  for (const { where, target } of targets) {
    results.push(
      await checkSource(`${where} secret`, target.secret, env, (value) =>
        // The notifier sends nothing signed with an empty key (anyone could forge it).
        value.length === 0
          ? {
              status: 'fail',
              message: `${target.secret.raw} ${EMPTY_SECRET}`,
              fix:
                target.secret.kind === 'env'
                  ? `Set the variable ${target.secret.raw} names to the key in the daemon's environment (systemd: EnvironmentFile=), e.g. \`openssl rand -hex 32\``
                  : `Write the key into ${target.secret.path}, e.g. \`openssl rand -hex 32\``,
            }
          : undefined,
      ),
    );
  }
  return results;
}

async function checkSource(
  check: string,
  source: CredentialSource,
  env: NodeJS.ProcessEnv,
  judge: (value: Uint8Array) => Omit<CheckResult, 'check'> | undefined = () => undefined,
): Promise<CheckResult> {
  try {
    const value = (await resolveSource(check, source, env)).bytes();
    return {
      check,
      ...(judge(value) ?? { status: 'ok', message: `${source.raw} resolves (the value is not shown)` }),
    };
  } catch (error) {
    return unresolvedSource(check, source, error, 'systemd: EnvironmentFile=');
  }
}

/**
 * A check of a credential source that did not resolve: the resolver's error without its own
 * `credential NAME: ` (the check names it), and the fix; `envHint` says where the daemon's
 * environment is set (for a variable that is not).
 */
export function unresolvedSource(
  check: string,
  source: CredentialSource,
  error: unknown,
  envHint: string,
): CheckResult {
  return {
    check,
    status: 'fail',
    message: errorMessage(error).replace(/^credential [^:]+: /, ''),
    fix:
      refusalFix(error) ??
      (source.kind === 'env'
        ? unsetVariableFix(source.name, envHint)
        : `Create ${source.path}, readable by the daemon's user (mode 0600)`),
  };
}

function checkTls(tls: { cert: string; key: string }): CheckResult {
  const check = 'http tls';
  // The same reading and parse as start's (PEM syntax, a key that belongs to the certificate).
  const loaded = loadTls(tls);
  if ('message' in loaded) return { check, status: 'fail', ...loaded };
  return { check, status: 'ok', message: `${tls.cert} and its key ${tls.key} load` };
}

/** Whether the address can be bound now: a port in use is most often this agentd, already running. */
async function checkListen(http: HttpSettings): Promise<CheckResult> {
  const check = 'http listen';
  const where = describeListen(http.listen);
  if (http.listen.kind === 'unix') {
    const dir = dirname(http.listen.path);
    // Start's rule (ensurePrivateDir): a directory only the daemon's user controls, or one it can create.
    const problem = ownDirProblem(dir);
    if (problem !== undefined) {
      const [found, fix] = problem.split(' Fix: ');
      return {
        check,
        status: 'fail',
        message: `HTTP socket directory ${dir} ${found} (daemon.http.listen ${where})`,
        fix:
          fix ??
          "Point daemon.http.listen at a socket in a directory only the daemon's user can write to (agentd creates a missing one, mode 0700)",
      };
    }
    if (existsSync(http.listen.path)) {
      return {
        check,
        status: 'ok',
        message: `${where}: a socket is there (a running agentd's, or a stale one start replaces)`,
      };
    }
    return { check, status: 'ok', message: `${where}: free (agentd creates ${dir} if needed, mode 0700)` };
  }
  const { host, port } = http.listen;
  return new Promise((resolvePromise) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => {
      resolvePromise(
        error.code === 'EADDRINUSE'
          ? {
              check,
              status: 'warn',
              message: `${where} is in use (by a running agentd, or by another program)`,
              fix: 'If agentd is not running, stop what holds the port or choose another daemon.http.listen',
            }
          : {
              check,
              status: 'fail',
              message: `cannot listen on ${where}: ${error.code ?? errorMessage(error)}`,
              fix:
                error.code === 'EACCES'
                  ? 'Ports below 1024 need root or CAP_NET_BIND_SERVICE; choose a port above 1023'
                  : 'Use an address of this machine (e.g. 127.0.0.1) in daemon.http.listen',
            },
      );
    });
    server.listen(port, host, () => {
      server.close(() => resolvePromise({ check, status: 'ok', message: `${where}: free` }));
    });
  });
}
