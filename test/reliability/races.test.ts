/**
 * Races: events that land at the worst moment, many times over, each round's timing shifted a little.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { gitAndGate, launchDaemon, leftoversAfterCleanup, startDaemon } from '../helpers/daemon.js';

const { gate, agent } = gitAndGate();

afterEach(async () => {
  gate.hold();
  expect(await leftoversAfterCleanup(), 'podman objects the test daemons left behind').toEqual([]);
});

describe('a signal as the stopped daemon exits', () => {
  it('a SIGTERM, SIGINT or SIGHUP in the last milliseconds of a finished stop does not kill it: it exits 0', {
    timeout: 120_000,
  }, async () => {
    let d = await startDaemon({ agents: [agent('quick', ['true'])] });
    const ends: string[] = [];
    const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
    for (let round = 0; round < 12; round++) {
      d.signal('SIGTERM');
      // daemon.stopped is the stop's last log line: the process ends within milliseconds of it. The
      // signal lands then, a little later each round.
      await d.waitForLog((l) => l.event === 'daemon.stopped');
      await sleep(round % 4);
      if (d.running) d.signal(signals[round % 3] as NodeJS.Signals);
      const end = await d.exited;
      ends.push(`${signals[round % 3]}: ${end.code} ${end.signal}`);
      d = launchDaemon(d.files);
      await d.ready();
    }
    expect(await d.stop()).toBe(0);
    expect(ends.filter((e) => !e.endsWith(' 0 null'))).toEqual([]);
  });
});
