/**
 * Times and the timeout of a stored session record are what recovery counts an adopted session's
 * deadline with (its start plus its timeout). A record whose start is no time made that deadline NaN,
 * and the old daemon stopped the adopted session at once as timed out, minutes before its timeout
 * (measured with a real daemon: a 10m session, `timed_out` 0.7 s after its adoption). Such a record is
 * quarantined like any record agentd did not write; the session is rebuilt from its record directory.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ContainerSummary } from '../../src/adapters/podman.js';
import { LABEL_AGENT, LABEL_INSTANCE, LABEL_SESSION } from '../../src/constants.js';
import { planRecovery } from '../../src/daemon/recovery.js';
import { journalFixtures } from '../helpers/journal-fixture.js';
import { AGENTS } from '../helpers/machine-fakes.js';
import { sessionRecord } from '../helpers/session-record.js';

const { journalIn } = journalFixtures('agentd-unit-record-times-');

const ID = '00000000000000e1';
const STARTED = '2026-01-01T00:00:00.000Z';
const NOW = Date.parse('2026-01-01T00:04:00.000Z');
const TEN_MINUTES = 10 * 60_000;

const daemonIn = () => journalIn();

const agent = AGENTS[0]?.name ?? 'demo';
const running: ContainerSummary = {
  Id: `id-${ID}`,
  Names: [`agentd-x-${agent}-${ID}`],
  State: 'running',
  Labels: { [LABEL_INSTANCE]: 'x', [LABEL_SESSION]: ID, [LABEL_AGENT]: agent },
};

/** A running session's record as it ran: 4 of its 10 minutes gone at NOW. */
function ran(extra = {}) {
  return sessionRecord(ID, {
    agent,
    phase: 'running',
    phases: [{ phase: 'running', at: STARTED }],
    startedAt: STARTED,
    timeoutMs: TEN_MINUTES,
    ...extra,
  });
}

describe("a stored record's times", () => {
  it.each([
    ['a start that is no time', { startedAt: 'garbage' }, 'its startedAt "garbage" is not a time'],
    [
      'a start with a control character',
      { startedAt: `${STARTED}\u001b` },
      `its startedAt "${STARTED}\\u001b" is not a time`,
    ],
    ['a negative timeout', { timeoutMs: -1 }, 'its timeoutMs -1 is negative'],
  ])(
    'with %s: quarantined, and the session adopted from its record directory with the 6 minutes it has left',
    (_what, damage, reason) => {
      const daemon = daemonIn();
      const recordDir = join(daemon.stateDir, 'records', agent, ID);
      writeFileSync(join(daemon.store.dir, `${ID}.json`), JSON.stringify({ ...ran(damage), recordDir }));
      // Written while it ran, undamaged.
      mkdirSync(recordDir, { recursive: true, mode: 0o700 });
      writeFileSync(join(recordDir, 'session.json'), JSON.stringify(ran()));
      const reasons: string[] = [];
      const { unfinished } = daemon.journal.load((bad) => reasons.push(bad.reason));
      expect(reasons).toEqual([`it is not a session record: ${reason}`]);
      const plan = planRecovery(unfinished, [running], AGENTS, NOW);
      expect(plan.adopted.map((a) => [a.request.sessionId, a.adopted.remainingMs])).toEqual([
        [ID, 6 * 60_000],
      ]);
    },
  );

  it('as agentd or a person writes them are taken', () => {
    const daemon = daemonIn();
    for (const [n, startedAt] of [
      '2026-01-01T00:00:00.000Z',
      '2026-01-01T01:00+01:00',
      '+010000-01-01T00:00:00.000Z',
    ].entries()) {
      const id = `00000000000000f${n}`;
      writeFileSync(
        join(daemon.store.dir, `${id}.json`),
        JSON.stringify(sessionRecord(id, { phase: 'running', startedAt })),
      );
    }
    const reasons: string[] = [];
    expect(daemon.store.list((bad) => reasons.push(bad.reason))).toHaveLength(3);
    expect(reasons).toEqual([]);
  });
});
