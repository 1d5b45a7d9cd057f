/**
 * Outcome kinds: what a finished command's exit code says, by the convention agents follow (and
 * operators may override per agent with `exit_codes:`). `blocked` and `nothing_ready` are not
 * failures: a scheduler tries again later.
 */
export const OUTCOME_KINDS = [
  'success',
  'failure',
  'usage_error',
  'blocked',
  'nothing_ready',
  'work_failed',
  'infrastructure_failure',
  'not_executable',
  'not_found',
  'killed',
] as const;
export type OutcomeKind = (typeof OUTCOME_KINDS)[number];

/** Kinds that do not count as a failed session. */
export const NOT_FAILED_KINDS: readonly OutcomeKind[] = ['success', 'blocked', 'nothing_ready'];

/** The convention: 0 success, 1 failure, 2 usage error, 3 blocked, 4 nothing ready, 5 work failed, 6 infrastructure failure, 126, 127, >128. */
export const DEFAULT_EXIT_CODE_KINDS: Readonly<Record<number, OutcomeKind>> = {
  0: 'success',
  1: 'failure',
  2: 'usage_error',
  3: 'blocked',
  4: 'nothing_ready',
  5: 'work_failed',
  6: 'infrastructure_failure',
  126: 'not_executable',
  127: 'not_found',
};

/** The kind of an exit code: the agent's own mapping first, then the convention. */
export function kindOfExitCode(
  exitCode: number,
  overrides: Readonly<Record<number, OutcomeKind>> = {},
): OutcomeKind {
  const own = overrides[exitCode];
  if (own !== undefined) return own;
  const conventional = DEFAULT_EXIT_CODE_KINDS[exitCode];
  if (conventional !== undefined) return conventional;
  return exitCode > 128 ? 'killed' : 'failure';
}

export function isNotFailedKind(kind: OutcomeKind | undefined): boolean {
  return kind !== undefined && NOT_FAILED_KINDS.includes(kind);
}
