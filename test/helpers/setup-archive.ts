import { expect } from 'vitest';
import { OUTPUT_TARGET } from '../../src/config/mounts.js';
import { SETUP_SCRIPT } from '../../src/runner/setup-script.js';

/**
 * The setup step's archiving of /agentd/out, to run in /bin/sh without Podman: copy_out after its loop
 * that kills every process (which here would be the test's), from the loop's `done` to the function's
 * end, with /agentd/out at `out`.
 */
export function archiving(out: string): string {
  const start = SETUP_SCRIPT.indexOf('copy_out() {');
  const from = SETUP_SCRIPT.indexOf('\n  done\n', start) + '\n  done\n'.length;
  const to = SETUP_SCRIPT.indexOf('\n}\n', from);
  expect(start).toBeGreaterThan(-1);
  expect(to).toBeGreaterThan(from);
  return SETUP_SCRIPT.slice(from, to).replaceAll(OUTPUT_TARGET, out);
}
