import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { SETUP_STEP_VARIABLES } from '../../src/config/schema.js';
import type { AgentConfig } from '../../src/config/types.js';
import { SETUP_SCRIPT } from '../../src/runner/setup-script.js';
import { assembleSession } from '../../src/sessions/assemble.js';
import { planRun } from '../../src/sessions/run-plan.js';
import { AGENTS, request } from '../helpers/machine-fakes.js';

/** Every shell variable and function the setup step assigns or defines (lower case, and IFS). */
function variablesOf(script: string): Set<string> {
  const names = new Set<string>();
  for (const m of script.matchAll(/(?:^|[\s;(])([A-Za-z_][A-Za-z0-9_]*)=/g)) names.add(m[1] as string);
  for (const m of script.matchAll(/\bfor ([A-Za-z_][A-Za-z0-9_]*) in/g)) names.add(m[1] as string);
  for (const m of script.matchAll(/\bread -r ([A-Za-z_][A-Za-z0-9_ ]*)/g)) {
    for (const name of (m[1] as string).split(' ')) if (name !== '') names.add(name);
  }
  for (const m of script.matchAll(/^\s*([a-z_][a-z0-9_]*)\(\)/gm)) names.add(m[1] as string);
  return new Set([...names].filter((name) => name === 'IFS' || /^[a-z_][a-z0-9_]*$/.test(name)));
}

describe("the setup step's variables", () => {
  it('are all refused as credential and env names (the list in config follows the script)', () => {
    expect([...variablesOf(SETUP_SCRIPT)].sort()).toEqual([...SETUP_STEP_VARIABLES].sort());
  });

  it('refuse a credential named like one, with the reason', () => {
    const text = [
      'agents:',
      '  - name: demo',
      '    image: localhost/agentd-base:bookworm',
      '    command: ["run"]',
      '    credentials:',
      '      - { name: drop, source: env:X }',
    ].join('\n');
    expect(() => parseConfig(text, '/etc/agentd/agentd.yaml', {}, 1000)).toThrow(
      /agents\[0\]\.credentials\[0\]\.name.*"drop" is a variable of the setup step/s,
    );
  });
});

describe("the setup step's own inputs", () => {
  it('are all set by agentd, empty when unused, so none comes from the image', () => {
    // An image's ENV reaches the container unless agentd sets the variable: AGENTD_SETUP_CACHES naming
    // /run/secrets/agentd had root hand the credentials to the agent's user.
    const read = new Set([...SETUP_SCRIPT.matchAll(/AGENTD_SETUP_[A-Z_]+/g)].map((m) => m[0]));
    expect(read.size).toBeGreaterThan(5);
    const plain = assembleSession(request('0123456789abcdef', 'norepo'), AGENTS[1] as AgentConfig, {
      credentials: [],
    });
    const { env } = planRun(plain, {
      instanceId: 'e'.repeat(32),
      stopGraceMs: 1000,
      workDir: '/w',
    }).container;
    for (const name of read) expect(env, name).toHaveProperty(name);
    expect(env).toMatchObject({ AGENTD_SETUP_CACHES: '', AGENTD_SETUP_CAPS: '', AGENTD_SETUP_WORK_UNIT: '' });
  });
});
