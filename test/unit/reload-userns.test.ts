/**
 * A reload that turns `user_namespace: auto` on where the containers ranges of /etc/subuid and /etc/subgid
 * cannot hold a session (src/daemon/reload.ts) is refused as `agentd start` refuses to start: it was applied,
 * and every session of the agent then ended `error`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Actor } from 'xstate';
import type { ServiceNotifier } from '../../src/adapters/sd-notify.js';
import type { SubordinateRange } from '../../src/adapters/subordinate-ids.js';
import { loadConfig } from '../../src/config/load.js';
import type { AgentConfig, Settings } from '../../src/config/types.js';
import { checkUserNamespaces } from '../../src/daemon/preflight.js';
import { createReloader } from '../../src/daemon/reload.js';
import type { daemonMachine } from '../../src/machines/daemon.machine.js';
import { makeTempDir } from '../helpers/resources.js';

/** The daemon machine as the reloader sees it: its agents, `reload.applied` to each `reload`, and what it was sent. */
function fakeActor(agents: AgentConfig[], sent: unknown[]): Actor<typeof daemonMachine> {
  const listeners = new Map<string, (answer: unknown) => void>();
  let current = agents;
  return {
    getSnapshot: () => ({
      status: 'active',
      context: { agents: current, maxSessions: 1, sessions: {}, queue: [] },
      matches: () => false,
    }),
    on: (type: string, listener: (answer: unknown) => void) => {
      listeners.set(type, listener);
      return { unsubscribe: () => listeners.delete(type) };
    },
    send: (event: { type: string; requestId: string; agents: AgentConfig[]; maxSessions: number }) => {
      sent.push(event);
      current = event.agents;
      listeners.get('reload.applied')?.({
        type: 'reload.applied',
        requestId: event.requestId,
        agents: event.agents.map((a) => a.name),
        maxSessions: event.maxSessions,
      });
    },
  } as unknown as Actor<typeof daemonMachine>;
}

function configText(dir: string, userns: boolean): string {
  return `daemon:\n  socket: ${dir}/agentd.sock\n  state_dir: ${dir}/state\nagents:\n  - name: a\n    image: localhost/x:1\n    command: [echo, hi]\n${userns ? '    user_namespace: auto\n' : ''}`;
}

async function reloadWith(ranges: SubordinateRange[]) {
  const dir = makeTempDir('agentd-unit-reload-userns-');
  const file = join(dir, 'agentd.yaml');
  writeFileSync(file, configText(dir, false));
  const started = await loadConfig({ flag: file });
  writeFileSync(file, configText(dir, true));
  const sent: unknown[] = [];
  const lines: { event?: string; msg: string }[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const reload = createReloader({
    started,
    actor: fakeActor(started.agents, sent),
    log,
    notify: { reloading: () => {}, ready: () => {} } as unknown as ServiceNotifier,
    // Root's check, with the files' ranges given.
    userNamespaces: (settings: Pick<Settings, 'agents' | 'hosts' | 'daemon'>) =>
      checkUserNamespaces(settings, 0, () => ranges),
  });
  return { reply: await reload('request'), sent, lines };
}

describe('a reload that turns on user_namespace: auto', () => {
  it('is refused, changing nothing, without a containers range that holds a session', async () => {
    const { reply, sent, lines } = await reloadWith([{ user: 'someone', start: 100_000, count: 65_536 }]);
    expect(reply).toMatchObject({ type: 'reload_failed' });
    expect(reply.message).toContain(
      '/etc/subuid and /etc/subgid have no containers range of at least 65536 ids',
    );
    expect(reply.message).toContain('Add the line containers:2000000:2097152 to /etc/subuid and /etc/subgid');
    expect(reply.message).toContain('The daemon keeps running with the configuration it had.');
    expect(sent).toEqual([]);
    expect(lines.filter((l) => l.event === 'daemon.reload_failed')).toHaveLength(1);
  });

  it('is applied with one', async () => {
    const { reply, sent } = await reloadWith([{ user: 'containers', start: 2_000_000, count: 8 * 65_536 }]);
    expect(reply).toMatchObject({ type: 'reloaded' });
    expect(sent).toHaveLength(1);
  });
});
