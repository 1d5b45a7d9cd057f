import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { AgentConfig, ScheduleConfig } from '../../src/config/types.js';
import { ScheduleLog } from '../../src/daemon/schedule-log.js';
import { AGENTS } from '../helpers/machine-fakes.js';
import { makeTempDir } from '../helpers/resources.js';

const writes = vi.hoisted(() => ({ count: 0 }));
vi.mock('../../src/adapters/state-files.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/adapters/state-files.js')>();
  return {
    ...actual,
    writeFileAtomic: (...args: Parameters<typeof actual.writeFileAtomic>) => {
      writes.count++;
      actual.writeFileAtomic(...args);
    },
  };
});

const HOURLY: ScheduleConfig = { cron: '0 * * * *', overlap: 'skip', catchUp: 'latest' };
const agent = (name: string, schedule?: ScheduleConfig): AgentConfig => ({
  ...(AGENTS[0] as AgentConfig),
  name,
  ...(schedule ? { schedule } : {}),
});

describe('schedules.json', () => {
  it('remembers only the schedules configured as they were: one removed or changed is forgotten', () => {
    const dir = makeTempDir('agentd-unit-schedules-');
    const since = '2026-06-01T07:30:00.000Z';
    const entry = { cron: '0 * * * *', since };
    writeFileSync(
      join(dir, 'schedules.json'),
      JSON.stringify({ version: 1, agents: { same: entry, removed: entry, changed: entry } }),
    );
    const log = new ScheduleLog(dir, pino({ level: 'silent' }));
    const loaded = log.load([agent('same', HOURLY), agent('changed', { ...HOURLY, cron: '*/15 * * * *' })]);
    expect(loaded).toEqual({ same: since });
    log.record('same', HOURLY, '2026-06-01T10:00:00.000Z');
    log.flush();
    const file = JSON.parse(readFileSync(join(dir, 'schedules.json'), 'utf8')) as { agents: object };
    // Brought back by a later restart, `removed` starts afresh instead of catching up a firing from
    // when it was not configured.
    expect(Object.keys(file.agents)).toEqual(['same']);
  });

  it('drops an entry whose since is no time, saying which agent, instead of crashing the daemon at every start', () => {
    const dir = makeTempDir('agentd-unit-schedules-');
    const good = '2026-06-01T07:30:00.000Z';
    writeFileSync(
      join(dir, 'schedules.json'),
      JSON.stringify({
        version: 1,
        agents: {
          good: { cron: '0 * * * *', since: good },
          garbage: { cron: '0 * * * *', since: 'garbage' },
          month13: { cron: '0 * * * *', since: '2026-13-45T00:00:00Z' },
          empty: { cron: '0 * * * *', since: '' },
        },
      }),
    );
    const lines: { event?: string; agent?: string; msg?: string }[] = [];
    const log = new ScheduleLog(
      dir,
      pino({}, { write: (line: string) => lines.push(JSON.parse(line) as (typeof lines)[number]) }),
    );
    const agents = ['good', 'garbage', 'month13', 'empty'].map((name) => agent(name, HOURLY));
    expect(log.load(agents)).toEqual({ good });
    expect(lines.map((l) => [l.event, l.agent])).toEqual([
      ['daemon.schedules_unreadable', 'garbage'],
      ['daemon.schedules_unreadable', 'month13'],
      ['daemon.schedules_unreadable', 'empty'],
    ]);
    expect(lines[0]?.msg).toContain(`agent garbage's entry in ${join(dir, 'schedules.json')}`);
  });

  it('is written once for all the schedules that fire in one turn, not once per schedule', async () => {
    const dir = makeTempDir('agentd-unit-schedules-');
    const log = new ScheduleLog(dir, pino({ level: 'silent' }));
    const names = Array.from({ length: 1_000 }, (_, i) => `agent-${i}`);
    log.load(names.map((name) => agent(name, HOURLY)));
    const before = writes.count;
    // 1,000 agents on one cron expression fire at the same second.
    for (const name of names) log.record(name, HOURLY, '2026-06-01T10:00:00.000Z');
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes.count - before).toBe(1);
    const file = JSON.parse(readFileSync(join(dir, 'schedules.json'), 'utf8')) as {
      agents: Record<string, { since: string }>;
    };
    expect(Object.keys(file.agents)).toHaveLength(1_000);
    expect(file.agents['agent-999']?.since).toBe('2026-06-01T10:00:00.000Z');
    // A stop writes what the last turn recorded; with nothing recorded since, nothing.
    log.record('agent-0', HOURLY, '2026-06-01T11:00:00.000Z');
    log.flush();
    log.flush();
    expect(writes.count - before).toBe(2);
    expect(JSON.parse(readFileSync(join(dir, 'schedules.json'), 'utf8')).agents['agent-0'].since).toBe(
      '2026-06-01T11:00:00.000Z',
    );
  });
});
