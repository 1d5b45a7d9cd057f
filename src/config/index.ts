export {
  ConfigError,
  type ConfigProblem,
  DEFAULTS,
  EXAMPLE_CONFIG,
  formatPath,
  formatProblems,
  type LoadOptions,
  loadConfig,
  parseConfig,
} from './load.js';
export { configSearchPath, defaultSocketPath, defaultStateDir } from './paths.js';
export { isReservedEnvName, isReservedUserName } from './schema.js';
export type * from './types.js';
