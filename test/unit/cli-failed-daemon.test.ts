/**
 * What the CLI makes of a daemon whose machine failed (it is exiting): `cancel` and `hosts drain`/`undrain`
 * are answered `error` `failed`, which the CLI prints with the daemon's words and exits 13 (the daemon failed,
 * as `status` does), not 6 "no such session" or 1 "no such host", while the session or host is still there.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { exitCodeForReply } from '../../src/cli/client-io.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { runCliInProcess as run } from '../helpers/cli-in-process.js';
import { fakeDaemon } from '../helpers/fake-daemon.js';
import { cleanupAll } from '../helpers/resources.js';

afterEach(() => cleanupAll());

const FAILED = 'the daemon failed: ENOSPC: no space left on device, write; it is exiting, restart it';
const REPLY = { v: 2, type: 'error', code: 'failed', message: FAILED, problems: [], retryable: false };

describe('the CLI against a failed daemon', () => {
  it('an error `failed` is exit 13 (the daemon failed), whatever the command', () => {
    expect(exitCodeForReply(REPLY as never)).toBe(EXIT.daemonFailed);
  });

  it('cancel says the daemon failed and to restart it, exit 13, not 6 "no such session"', async () => {
    const path = await fakeDaemon(REPLY);
    const text = await run(['cancel', '0123456789abcdef', '--socket', path]);
    expect(text).toEqual({
      code: EXIT.daemonFailed,
      stdout: '',
      stderr: `agentd: session 0123456789abcdef was not cancelled: ${FAILED}\n`,
    });
    const json = await run(['cancel', '0123456789abcdef', '--json', '--socket', path]);
    expect(json.code).toBe(EXIT.daemonFailed);
    expect(JSON.parse(json.stdout)).toEqual({
      error: 'failed',
      message: `session 0123456789abcdef was not cancelled: ${FAILED}`,
      code: EXIT.daemonFailed,
    });
  });

  it('reload says the daemon failed, exit 13, not 1 as for a file that kept the old configuration', async () => {
    const path = await fakeDaemon(REPLY);
    const answer = await run(['reload', '--socket', path]);
    expect(answer).toEqual({
      code: EXIT.daemonFailed,
      stdout: '',
      stderr: `agentd: nothing was reloaded: ${FAILED}\n`,
    });
  });

  it('hosts drain and undrain say the daemon failed, exit 13, not 1 as for a host that is not configured', async () => {
    const path = await fakeDaemon(REPLY);
    for (const type of ['drain', 'undrain']) {
      const answer = await run(['hosts', type, 'local', '--socket', path]);
      expect(answer, type).toEqual({
        code: EXIT.daemonFailed,
        stdout: '',
        stderr: `agentd: host local was not ${type}ed: ${FAILED}\n`,
      });
    }
    // A host the daemon does not know is still the operation's failure (1).
    const unknown = await fakeDaemon({ ...REPLY, code: 'unknown_host', message: 'no host "nope"' });
    expect((await run(['hosts', 'drain', 'nope', '--socket', unknown])).code).toBe(EXIT.failed);
  });
});
