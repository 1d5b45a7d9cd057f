import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

/** The file in the run's temp root (test/helpers/temp-root.ts) listing the object-name prefixes of its instances. */
export const INSTANCES_FILE = '.instances';

/**
 * Notes that this run makes Podman objects named with prefix (an instance's `agentd-XXXXXXXX-`), so
 * that the run's teardown can check that none of them is left. Other runs on the machine have other
 * prefixes: only this run's objects are checked.
 */
export function recordInstance(prefix: string): void {
  const root = process.env.AGENTD_TEST_TMP_ROOT;
  if (root !== undefined) appendFileSync(join(root, INSTANCES_FILE), `${prefix}\n`);
}
