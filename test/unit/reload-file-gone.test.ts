/**
 * A reload whose configuration file is gone (src/daemon/reload.ts): the daemon re-reads the one file it
 * was started with, so the answer names that file and the fix, not the start's search of --config,
 * $AGENTD_CONFIG and the default paths, which a reload never makes.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Actor } from 'xstate';
import type { ServiceNotifier } from '../../src/adapters/sd-notify.js';
import type { Settings } from '../../src/config/types.js';
import { createReloader } from '../../src/daemon/reload.js';
import type { daemonMachine } from '../../src/machines/daemon.machine.js';
import { makeTempDir } from '../helpers/resources.js';

const actor = {
  getSnapshot: () => ({
    context: { agents: [], maxSessions: 1, sessions: {}, queue: [] },
    matches: () => false,
  }),
} as unknown as Actor<typeof daemonMachine>;
const notify = { reloading: () => {}, ready: () => {} } as unknown as ServiceNotifier;

describe('a reload whose configuration file is gone', () => {
  it('names the file the daemon started with and the fix, and keeps the configuration', async () => {
    const dir = makeTempDir('agentd-unit-reload-gone-');
    mkdirSync(join(dir, 'etc'));
    const file = join(dir, 'etc', 'agentd.yaml');
    writeFileSync(file, 'agents: []\n');
    const lines: { event?: string; msg?: string }[] = [];
    const reload = createReloader({
      started: { file } as Settings,
      actor,
      log: pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) }),
      notify,
    });
    // Removed; then its directory replaced by a file (ENOTDIR, which the start's search also passes over).
    const removals = [
      () => rmSync(file),
      () => {
        rmSync(join(dir, 'etc'), { recursive: true });
        writeFileSync(join(dir, 'etc'), '');
      },
    ];
    for (const gone of removals) {
      gone();
      const answer = await reload('request');
      expect(answer.type).toBe('reload_failed');
      expect(answer.message).toContain(
        `the configuration file ${file} the daemon was started with is not there`,
      );
      expect(answer.message).toMatch(/put it back/);
      expect(answer.message).toMatch(/The daemon keeps running with the configuration it had\.$/);
      // Words of the start's search, which a reload does not make.
      expect(answer.message).not.toMatch(/--config or create|default locations|looked at/);
      const failed = lines.filter((l) => l.event === 'daemon.reload_failed').at(-1);
      expect(failed?.msg).toBe(answer.message);
    }
  });

  it('a file that is there but invalid is still told problem by problem', async () => {
    const dir = makeTempDir('agentd-unit-reload-gone-');
    const file = join(dir, 'agentd.yaml');
    writeFileSync(file, 'agents: [\n');
    const reload = createReloader({
      started: { file } as Settings,
      actor,
      log: pino({ level: 'silent' }),
      notify,
    });
    const answer = await reload('SIGHUP');
    expect(answer.message).toMatch(new RegExp(`^${file}: 1 problem in the configuration`));
  });
});
