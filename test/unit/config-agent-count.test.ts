/**
 * How many agents one configuration may hold (MAX_AGENTS). The text was bounded, the agents it makes
 * were not: merged agents (`- {<<: *d, name: aN}`, some 25 bytes each) took `agentd validate` to 900 MB
 * for 124,000 of them, and a daemon keeps some 2 to 3 KB per agent for its whole life. A file of more is
 * refused at load (validate, start, reload alike), before the aliases are put in place and the agents
 * made, naming the file, the count, the limit and what to do.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { Document } from 'yaml';
import { ConfigError, loadConfig, MAX_AGENTS } from '../../src/config/load.js';
import { makeTempDir } from '../helpers/resources.js';

const head = (dir: string) => `daemon:\n  socket: ${dir}/agentd.sock\n  state_dir: ${dir}/state\n`;

/** `agents` merged agents under `head`: the first has the anchor, the others `<<: *d` and a name. */
function merged(dir: string, agents: number): string {
  let text = `${head(dir)}agents:\n  - &d {name: a0, image: localhost/agentd-base:bookworm, command: [run]}\n`;
  for (let i = 1; i < agents; i++) text += `  - {<<: *d, name: a${i}}\n`;
  return text;
}

async function refusal(file: string): Promise<ConfigError> {
  const error = await loadConfig({ flag: file }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

describe('the number of agents in a configuration', () => {
  it('is at most MAX_AGENTS: one more is refused with the file, the count, the limit and the fix', async () => {
    expect(MAX_AGENTS).toBe(10_000);
    const dir = makeTempDir('agentd-unit-agent-count-');
    const file = join(dir, 'agentd.yaml');
    writeFileSync(file, merged(dir, MAX_AGENTS));
    const settings = await loadConfig({ flag: file });
    expect(settings.agents).toHaveLength(MAX_AGENTS);
    expect(settings.agents[MAX_AGENTS - 1]).toMatchObject({ name: 'a9999', command: ['run'] });

    writeFileSync(file, merged(dir, MAX_AGENTS + 1));
    const error = await refusal(file);
    expect(error.total).toBe(1);
    expect(error.problems).toEqual([
      {
        path: 'agents',
        line: 5,
        column: 3,
        message:
          '10,001 agents, more than the 10,000 one daemon takes (each costs it some 2 to 3 KB of memory for its whole life, and 400 bytes of every agents reply); split them between daemons of their own (each with its own config file, daemon.socket and daemon.state_dir), or remove the agents no one triggers',
      },
    ]);
    expect(error.message.split('\n')[0]).toBe(`${file}: 1 problem in the configuration`);
    // The README's example says it as the code does.
    const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
    const shown = error.message.split('\n')[1]?.replace('10,001 agents', '12,000 agents');
    expect(readme).toContain(`\n${shown}\n`);
  }, 120_000);

  it('is counted before any agent is made, also for a list given by an alias', async () => {
    const dir = makeTempDir('agentd-unit-agent-count-');
    const file = join(dir, 'agentd.yaml');
    const items = Array.from({ length: 12_000 }, (_, i) => `{<<: *d, name: a${i}}`).join(', ');
    writeFileSync(
      file,
      `${head(dir)}x-defaults: &d {image: localhost/agentd-base:bookworm, command: [run]}\nx-all: &all [${items}]\nagents: *all\n`,
    );
    // toJS makes the agents' objects; aliases are put in place just before it.
    const toJS = vi.spyOn(Document.prototype, 'toJS');
    try {
      const error = await refusal(file);
      expect(error.problems).toMatchObject([
        { path: 'agents', line: 6, message: expect.stringMatching(/^12,000 agents, more than the 10,000/) },
      ]);
      expect(toJS).not.toHaveBeenCalled();
    } finally {
      toJS.mockRestore();
    }
  }, 120_000);
});
