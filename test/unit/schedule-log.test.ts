import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { AgentConfig, ScheduleConfig } from '../../src/config/types.js';
import { ScheduleLog } from '../../src/daemon/schedule-log.js';
import { AGENTS } from '../helpers/machine-fakes.js';
import { makeTempDir } from '../helpers/resources.js';

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
    const file = JSON.parse(readFileSync(join(dir, 'schedules.json'), 'utf8')) as { agents: object };
    // Brought back by a later restart, `removed` starts afresh instead of catching up a firing from
    // when it was not configured.
    expect(Object.keys(file.agents)).toEqual(['same']);
  });
});
