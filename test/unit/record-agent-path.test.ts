/**
 * A session record's agent is a directory of records_dir (`<records_dir>/<agent>/<session>/`). A record
 * read back from the state dir (or from an open record directory) whose agent is not an agent name is
 * not one agentd wrote: it is quarantined, never recovered, settled and sealed wherever its agent's path
 * leads (the old code sealed `../../outside` outside records_dir, 0555, as the daemon's user).
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requestOf } from '../../src/daemon/recovery.js';
import { journalFixtures } from '../helpers/journal-fixture.js';
import { sessionRecord } from '../helpers/session-record.js';

const { journalIn } = journalFixtures('agentd-unit-agent-path-');

const ID = '00000000000000a1';

/** A state dir two levels down a temp dir: a path out of records_dir still lands in the temp dir. */
const daemonIn = () => journalIn({ stateAt: join('srv', 'state') });

describe("a stored record's agent", () => {
  it.each([
    ['a path out of records_dir', '../../outside'],
    ['a control character', 'demo\u001b[2J'],
    ['an upper-case name', 'Demo'],
    ['a name too long', 'a'.repeat(33)],
  ])('that is %s is quarantined, naming the field, and nothing is written for it', async (_what, agent) => {
    const daemon = daemonIn();
    const record = sessionRecord(ID, {
      agent,
      recordDir: join(daemon.stateDir, 'records', 'demo', ID),
    });
    writeFileSync(join(daemon.store.dir, `${ID}.json`), JSON.stringify(record));
    const reasons: string[] = [];
    const { unfinished } = daemon.journal.load((bad) => reasons.push(bad.reason));
    expect(unfinished).toEqual([]);
    expect(reasons).toEqual([
      `it is not a session record: its agent ${JSON.stringify(agent)} is not an agent name (lowercase letters, digits, _ and -, at most 32)`,
    ]);
    expect(readdirSync(daemon.store.quarantineDir)).toHaveLength(1);
    // Recovery would settle what load returned (abandoned: no such agent) and seal it at records/<agent>/.
    for (const found of unfinished)
      await daemon.journal.finish(requestOf(found), { outcome: 'abandoned', phase: 'queued' });
    expect(existsSync(join(daemon.root, 'srv', 'outside'))).toBe(false);
  });

  it('in an open record directory: not rebuilt from it, named as unreadable', () => {
    const daemon = daemonIn();
    for (const [id, agent] of [
      ['00000000000000b1', '../../outside'],
      // A valid name, but not the directory's agent: sealed there, it would leave this one open for ever.
      ['00000000000000b2', 'other'],
    ] as const) {
      const dir = join(daemon.stateDir, 'records', 'demo', id);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(
        join(dir, 'session.json'),
        JSON.stringify(sessionRecord(id, { agent, phase: 'running' })),
      );
    }
    const good = join(daemon.stateDir, 'records', 'demo', '00000000000000b3');
    mkdirSync(good, { mode: 0o700 });
    writeFileSync(
      join(good, 'session.json'),
      JSON.stringify(sessionRecord('00000000000000b3', { phase: 'running' })),
    );
    const { unfinished } = daemon.journal.load(() => {});
    expect(unfinished.map((r) => r.id)).toEqual(['00000000000000b3']);
    expect(daemon.keeper.find('00000000000000b1')).toBeUndefined();
    expect(daemon.keeper.find('00000000000000b2')).toBeUndefined();
  });
});
