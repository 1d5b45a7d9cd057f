/** The values of `agentd start --log-format` and `--log-level`: StartCommand's and the quick path's. */
export const LOG_FORMATS = ['json', 'pretty'] as const;
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
