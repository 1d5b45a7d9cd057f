import { ConfigError, parseConfig } from '../../src/config/load.js';

/** The path the config unit tests parse their text as, and the environment `~` expands from. */
export const CONFIG_FILE = '/etc/agentd/agentd.yaml';
export const CONFIG_ENV = { HOME: '/home/u' };

/** parseConfig of `text` as CONFIG_FILE with CONFIG_ENV (uid 1000). */
export function parseConfigText(text: string): ReturnType<typeof parseConfig> {
  return parseConfig(text, CONFIG_FILE, CONFIG_ENV, 1000);
}

/** The ConfigError a configuration text is refused with; a test fails if it is accepted. */
export function problemsOf(text: string): ConfigError {
  try {
    parseConfigText(text);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('the configuration was accepted');
}
