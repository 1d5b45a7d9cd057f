/**
 * `agentd validate`'s warning for each scheduled agent without `timezone:` while this process's time zone
 * cannot be read (src/cli/validate.ts): found with each agent's index in one pass over the agents, not
 * with indexOf for each one (36,000 such agents read 648 million entries, 0.3 s).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { zoneWarnings } from '../../src/cli/validate-run.js';
import type { AgentConfig } from '../../src/config/types.js';

const savedTz = process.env.TZ;
afterEach(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

describe("validate's time-zone warnings", () => {
  it('read each agent a bounded number of times, however many are scheduled without a timezone', () => {
    process.env.TZ = 'Nowhere/Bogus';
    const reads = (n: number) => {
      const agents = Array.from(
        { length: n },
        (_, i) => ({ name: `a${i}`, schedule: { cron: '*/5 * * * *' } }) as unknown as AgentConfig,
      );
      let count = 0;
      const counted = new Proxy(agents, {
        get(target, key, receiver) {
          if (typeof key === 'string' && /^\d+$/.test(key)) count++;
          return Reflect.get(target, key, receiver);
        },
      });
      const warnings = zoneWarnings(counted);
      expect(warnings).toHaveLength(n);
      expect(warnings[n - 1]?.path).toBe(`agents[${n - 1}].schedule`);
      expect(warnings[n - 1]?.agent).toBe(`a${n - 1}`);
      return count;
    };
    // indexOf for each agent read n * (n + 1) / 2 entries: 2,001,000 for 2,000 agents.
    expect(reads(2_000)).toBeLessThanOrEqual(2 * 2_000);
    expect(reads(2_000)).toBe(10 * reads(200));
  });
});
