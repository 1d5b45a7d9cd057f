import type { AgentConfig } from '../config/types.js';

/**
 * Makes `agents` of each holder read the agents in force (`current`) from now on, instead of the
 * definitions it was made with. The settings the daemon started with are held for its whole life (the
 * start's stack frames, the closures of `supervise`, the reloader's `started`, the daemon machine's
 * input, which XState keeps): each of them holding the start's agents kept every definition a reload
 * had replaced. Measured with bench/reload-memory.mjs's file of 52,401 one-line agents, in a heap
 * snapshot after a reload that changed them all: 120 MB alive, 68 MB once released (72 MB for a daemon
 * started on the new file, which holds the file's text).
 */
export function agentsInForce(
  holders: readonly { agents: readonly AgentConfig[] }[],
  current: () => AgentConfig[],
): void {
  for (const holder of holders)
    Object.defineProperty(holder, 'agents', { get: current, enumerable: true, configurable: true });
}
