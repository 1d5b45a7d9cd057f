import { Option } from 'clipanion';
import { loadConfig } from '../config/load.js';
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
  try {
    return await loadConfig(flag === undefined ? {} : { flag });
  } catch (error) {
    stderr.write(`${errorMessage(error)}\n`);
    return undefined;
  }
}
