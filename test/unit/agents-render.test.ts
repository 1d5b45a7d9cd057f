/**
 * `agentd agents` (src/cli/agents.ts) says each agent's limits as `validate` does. memory_swap is memory
 * plus swap: equal to memory is no swap, and it must not read as that much swap.
 */
import { describe, expect, it } from 'vitest';
import { renderAgent } from '../../src/cli/agents.js';
import type { AgentView } from '../../src/sessions/agent-view.js';

function agent(memory: string, memorySwap: string): AgentView {
  return {
    name: 'demo',
    image: 'localhost/agentd-base:bookworm',
    command: ['true'],
    network: 'bridge',
    env: [],
    credentials: [],
    resources: { memory, memorySwap, pids: 4096, disk: '1g', output: '64m' },
    capAdd: [],
  };
}

describe('agentd agents: the memory limit and swap', () => {
  it('says no swap when memory_swap equals memory, however it is written', () => {
    for (const [memory, swap] of [
      ['2g', '2g'],
      ['2g', '2048m'],
    ] as const) {
      expect(renderAgent(agent(memory, swap))).toContain(
        `    limits memory ${memory} (no swap), cpus unlimited, pids 4096, disk 1g, output 64m\n`,
      );
    }
  });

  it('says memory+swap, as validate does, when it is larger', () => {
    const text = renderAgent(agent('2g', '4g'));
    expect(text).toContain('limits memory 2g (memory+swap 4g),');
    expect(text).not.toMatch(/with swap/);
  });
});
