import { Option } from 'clipanion';
// Only types at the top: the loader (zod, the YAML parser, every schema) is loaded when a file is read,
// not by `agentd help`, which loads every command to list them.
import type { ConfigProblem } from '../config/load.js';
import type { Settings } from '../config/types.js';
import { errorMessage } from '../errors.js';

/** The --config option shared by the commands that read a configuration file. */
export function configOption(): string | undefined {
  return Option.String('--config,-c', {
    description:
      'Configuration file (default: $AGENTD_CONFIG, ~/.config/agentd/agentd.yaml, /etc/agentd/agentd.yaml)',
  });
}

/** Loads the configuration, or prints every problem and returns undefined. */
export async function loadSettingsOrReport(
  flag: string | undefined,
  stderr: NodeJS.WritableStream,
): Promise<Settings | undefined> {
  const { loadConfig } = await import('../config/load.js');
  try {
    return await loadConfig(flag === undefined ? {} : { flag });
  } catch (error) {
    stderr.write(`${errorMessage(error)}\n`);
    return undefined;
  }
}

/** What `--json` prints of a configuration that could not be loaded: every problem, placed. */
export interface ConfigFailure {
  error: 'config_invalid';
  file?: string;
  message: string;
  problems: ConfigProblem[];
}

/** Loads the configuration; on failure prints it to stderr and returns what `--json` prints of it. */
export async function loadSettingsOrFailure(
  flag: string | undefined,
  stderr: NodeJS.WritableStream,
): Promise<Settings | ConfigFailure> {
  const { ConfigError, loadConfig } = await import('../config/load.js');
  try {
    return await loadConfig(flag === undefined ? {} : { flag });
  } catch (error) {
    stderr.write(`${errorMessage(error)}\n`);
    return error instanceof ConfigError
      ? { error: 'config_invalid', file: error.file, message: error.message, problems: error.problems }
      : { error: 'config_invalid', message: errorMessage(error), problems: [] };
  }
}
