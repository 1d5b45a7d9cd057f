import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentNotifier, systemdNotifier } from '../../src/adapters/sd-notify.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * A stand-in for systemd-notify that writes its arguments (but the --pid) to a file, one call a line;
 * while the file `hold` exists it waits, as systemd-notify waits for a manager that has not read yet.
 */
function fakeSender(): { command: string; sent: () => string[]; hold: () => void; release: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'agentd-sd-notify-'));
  dirs.push(dir);
  const log = join(dir, 'sent');
  const hold = join(dir, 'hold');
  const command = join(dir, 'systemd-notify');
  writeFileSync(
    command,
    `#!/bin/sh\nshift\necho "$*" >> '${log}'\nwhile [ -e '${hold}' ]; do sleep 0.01; done\n`,
  );
  chmodSync(command, 0o755);
  return {
    command,
    sent: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []),
    hold: () => writeFileSync(hold, ''),
    release: () => rmSync(hold, { force: true }),
  };
}

describe('systemdNotifier', () => {
  it('does nothing without NOTIFY_SOCKET', () => {
    const warnings: string[] = [];
    expect(systemdNotifier({ env: {}, warn: (m) => warnings.push(m) })).toBe(silentNotifier);
    expect(warnings).toEqual([]);
  });

  it('takes NOTIFY_SOCKET out of the environment so that no child (podman, an agent) inherits it', () => {
    const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/systemd/notify', PATH: '/usr/bin' };
    systemdNotifier({ env, warn: () => {} });
    expect(env).toEqual({ PATH: '/usr/bin' });
  });

  it('warns, in order, and goes on when the sender is missing', async () => {
    const warnings: string[] = [];
    const notify = systemdNotifier({
      env: { NOTIFY_SOCKET: '/nonexistent/notify', PATH: process.env.PATH },
      warn: (m) => warnings.push(m),
      command: 'agentd-test-no-such-systemd-notify',
    });
    notify.ready('ready');
    notify.stopping('stopping');
    await notify.flush();
    expect(warnings).toEqual([
      'could not tell the service manager READY=1: agentd-test-no-such-systemd-notify is not installed (it comes with systemd)',
      'could not tell the service manager STOPPING=1: agentd-test-no-such-systemd-notify is not installed (it comes with systemd)',
    ]);
  });

  it('after STOPPING=1 sends no READY=1 or RELOADING=1 (a reload asked for while it drains), only newer STOPPING=1', async () => {
    const sender = fakeSender();
    const warnings: string[] = [];
    const notify = systemdNotifier({
      env: { NOTIFY_SOCKET: '/run/systemd/notify', PATH: process.env.PATH },
      warn: (m) => warnings.push(m),
      command: sender.command,
    });
    notify.ready('ready: 1 agent(s)');
    await notify.flush();
    notify.stopping('stopping: the start reconciles Podman first');
    await notify.flush();
    notify.reloading('reloading /etc/agentd/agentd.yaml');
    await notify.flush();
    notify.ready('ready: 1 agent(s)');
    await notify.flush();
    notify.stopping('stopping: 1 running session(s) to finish');
    await notify.flush();
    expect(sender.sent()).toEqual([
      'READY=1 STATUS=ready: 1 agent(s)',
      'STOPPING=1 STATUS=stopping: the start reconciles Podman first',
      'STOPPING=1 STATUS=stopping: 1 running session(s) to finish',
    ]);
    expect(warnings).toEqual([]);
  });

  it('of the messages waiting behind a send the manager has not read yet, sends only the newest', async () => {
    const sender = fakeSender();
    const notify = systemdNotifier({
      env: { NOTIFY_SOCKET: '/run/systemd/notify', PATH: process.env.PATH },
      warn: () => {},
      command: sender.command,
    });
    sender.hold();
    notify.ready('ready: first');
    notify.reloading('reloading');
    notify.ready('ready: second');
    notify.stopping('stopping');
    sender.release();
    await notify.flush();
    expect(sender.sent()).toEqual(['READY=1 STATUS=ready: first', 'STOPPING=1 STATUS=stopping']);
    // Idle again: the next message is sent at once.
    notify.stopping('stopping: later');
    await notify.flush();
    expect(sender.sent()).toHaveLength(3);
  });
});
