import { readEnvFile } from '../config/config-file.js';
import { type CheckResult, podmanOfHost, runPreflight } from '../daemon/preflight.js';
import { errorMessage } from '../errors.js';
import { type ClientIo, failWith, printJson } from './client-io.js';
import { loadSettingsOrFailure } from './config-option.js';
import { parseEnvFile } from './env-file.js';
import { EXIT } from './exit-codes.js';

export interface DoctorOptions {
  config?: string | undefined;
  json: boolean;
  envFile?: string | undefined;
}

/**
 * `agentd doctor`, loaded only when it runs: `agentd help` loads every command to list them, and this
 * part's imports (the configuration's loader and checks) made it several hundred ms of CPU.
 */
export async function runDoctor(options: DoctorOptions, io: ClientIo): Promise<number> {
  const out = io.stdout;
  const settings = await loadSettingsOrFailure(options.config, io.stderr);
  if ('error' in settings) {
    if (options.json) {
      printJson(io, {
        checks: [{ check: 'configuration', status: 'fail', message: settings.message }],
        failed: 1,
        warnings: 0,
        problems: settings.problems,
      });
      return EXIT.failed;
    }
    out.write(
      'fail  configuration: see the problems above; fix them (agentd validate) and run doctor again\n',
    );
    return EXIT.failed;
  }
  let env: NodeJS.ProcessEnv = process.env;
  if (options.envFile !== undefined) {
    try {
      env = { ...process.env, ...parseEnvFile(await readEnvFile(options.envFile)) };
    } catch (error) {
      // With --json one object on stdout too, as for every failure.
      const message = `cannot read --env-file ${options.envFile}: ${errorMessage(error)}`;
      return failWith(io, options.json, { error: 'usage', message }, EXIT.usage);
    }
  }
  if (!options.json) out.write(`agentd doctor: ${settings.file}, ${settings.agents.length} agent(s)\n`);
  const results = await runPreflight({
    settings,
    podman: podmanOfHost(settings.daemon.podmanTimeoutMs),
    env,
    depth: 'full',
  });
  const checks: CheckResult[] = [{ check: 'configuration', status: 'ok', message: 'valid' }, ...results];
  const failed = results.filter((r) => r.status === 'fail').length;
  const warned = results.filter((r) => r.status === 'warn').length;
  if (options.json) {
    printJson(io, { file: settings.file, checks, failed, warnings: warned });
    return failed > 0 ? EXIT.failed : EXIT.succeeded;
  }
  out.write(formatResults(checks));
  out.write(
    failed > 0
      ? `${failed} check(s) failed, ${warned} warning(s): sessions will fail until the failures are fixed\n`
      : `no check failed${warned > 0 ? `, ${warned} warning(s)` : ''}\n`,
  );
  return failed > 0 ? EXIT.failed : EXIT.succeeded;
}

export function formatResults(results: CheckResult[]): string {
  return results
    .map((r) => `${r.status.padEnd(5)} ${r.check}: ${r.message}\n${r.fix ? `      fix: ${r.fix}\n` : ''}`)
    .join('');
}
