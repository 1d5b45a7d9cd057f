import { describe, expect, it } from 'vitest';
import { silentNotifier, systemdNotifier } from '../../src/adapters/sd-notify.js';

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
});
