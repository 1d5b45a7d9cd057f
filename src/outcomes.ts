/**
 * How a session ends, in the operator's words: the one list every layer shares (configuration's
 * `notify.outcomes`, the records' schema, the protocol).
 */
export const OUTCOMES = ['succeeded', 'failed', 'timed_out', 'cancelled', 'error', 'abandoned'] as const;
export type Outcome = (typeof OUTCOMES)[number];
