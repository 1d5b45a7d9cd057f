import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Leftovers } from '../../src/daemon/leftovers.js';

function recorder() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { lines, leftovers: new Leftovers(log) };
}

describe('leftovers of failed teardowns', () => {
  it('keeps what could not be removed for the next sweep, and forgets what was', async () => {
    const { lines, leftovers } = recorder();
    leftovers.add({ containers: ['c1', ''], secrets: ['s1'] });
    leftovers.add({ host: 'build1', containers: [], secrets: ['s2'] });
    expect(leftovers.hosts().sort()).toEqual(['build1', 'local']);
    const calls: string[] = [];
    let containersFail = true;
    const podman = {
      removeContainers: async (names: string[]) => {
        calls.push(`rm ${names.join(' ')}`);
        if (containersFail) throw new Error('podman rm: exit 125');
      },
      removeSecrets: async (names: string[]) => {
        calls.push(`secret rm ${names.join(' ')}`);
      },
    };
    await leftovers.sweep('local', podman);
    expect(calls).toEqual(['rm c1', 'secret rm s1']);
    expect(lines.map((l) => [l.event, l.removed])).toEqual([
      ['session.leftovers_removed', ['s1']],
      ['session.leftovers_kept', undefined],
    ]);
    containersFail = false;
    await leftovers.sweep('local', podman);
    expect(calls.slice(2)).toEqual(['rm c1']);
    expect(leftovers.hosts()).toEqual(['build1']);
    // Nothing left there: no call.
    await leftovers.sweep('local', podman);
    expect(calls).toHaveLength(3);
  });

  it('runs one sweep per host at a time', async () => {
    const { leftovers } = recorder();
    leftovers.add({ containers: ['c1'], secrets: [] });
    let calls = 0;
    let finish: () => void = () => {};
    const podman = {
      removeContainers: () => {
        calls++;
        return new Promise<void>((resolve) => {
          finish = resolve;
        });
      },
      removeSecrets: async () => {},
    };
    const first = leftovers.sweep('local', podman);
    await leftovers.sweep('local', podman);
    expect(calls).toBe(1);
    finish();
    await first;
    expect(leftovers.hosts()).toEqual([]);
  });
});
