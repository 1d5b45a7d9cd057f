/**
 * A session log closed while its file cannot even be opened (a full disk: no room for a new file after
 * a rotation; here something that is no file stands at its path): the flush that close waits for ends at
 * once, and close must still return, with the lines it could not write counted as missing. Before, a
 * flush that ended before its waiter was added left close waiting for ever.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SessionLog } from '../../src/runner/session-log.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(() => cleanupAll());

describe('closing a session log that cannot be opened', () => {
  it('returns, after a flood, with what it could not write counted', async () => {
    const path = join(makeTempDir('agentd-unit-close-unwritable-'), 'session.log');
    mkdirSync(path);
    const log = new SessionLog(path, 4096);
    for (let first = 1; first <= 2000; first += 50) {
      for (let n = first; n < first + 50; n++) log.append(`line ${n} ${'x'.repeat(40)}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const closed = await Promise.race([
      log.close().then(() => 'closed'),
      new Promise((resolve) => setTimeout(() => resolve('still waiting'), 5_000)),
    ]);
    expect(closed).toBe('closed');
    expect(log.missing?.lines).toBeGreaterThan(0);
  }, 15_000);
});
