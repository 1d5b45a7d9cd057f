/** One finding of `agentd doctor` (and of start's cheap preflight). */

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  /** What was checked, e.g. `podman`, `image localhost/x:1`, `credential demo/TOKEN`. */
  check: string;
  status: CheckStatus;
  message: string;
  fix?: string;
}
