import { z } from 'zod';
import type { AgentConfig } from '../config/types.js';

/**
 * A configured agent as clients see it (the `agents` request, `agentd agents`): what it runs and where
 * its credentials come from, never a value. Environment variables are listed by name only: the file
 * calls them non-secret, but an operator may not have kept to that.
 */
export const agentViewSchema = z.object({
  name: z.string(),
  image: z.string(),
  command: z.array(z.string()),
  repo: z.string().optional(),
  timeoutMs: z.number().optional(),
  network: z.string(),
  env: z.array(z.string()),
  credentials: z.array(z.object({ name: z.string(), source: z.string() })),
  repoToken: z.object({ source: z.string(), origins: z.array(z.string()), required: z.boolean() }).optional(),
  resources: z.object({
    memory: z.string(),
    memorySwap: z.string(),
    cpus: z.number().optional(),
    pids: z.number(),
    disk: z.string(),
    /** The output directory's size (optional: a daemon before it was shown did not send it). */
    output: z.string().optional(),
    /** Each cache's size bound; absent: caches have none. */
    cache: z.string().optional(),
  }),
  capAdd: z.array(z.string()),
  maxConcurrent: z.number().optional(),
  schedule: z
    .object({
      cron: z.string(),
      timezone: z.string().optional(),
      workUnit: z.string().optional(),
      overlap: z.enum(['skip', 'queue']),
      catchUp: z.enum(['none', 'latest']),
      /** The next firing (ISO 8601), from the daemon's schedule actor; absent when it never fires again. */
      next: z.string().optional(),
      /** Set when the schedule failed (the daemon's supervision of it): why; it fires no more until a reload. */
      failed: z.string().optional(),
    })
    .optional(),
});
export type AgentView = z.infer<typeof agentViewSchema>;

/**
 * `next`: the schedule's next firing, as the daemon's schedule actor has it; `failed`: why the schedule
 * failed, when it did.
 */
export function describeAgent(agent: AgentConfig, next?: string, failed?: string): AgentView {
  const { resources: r } = agent;
  return {
    name: agent.name,
    image: agent.image,
    command: agent.command,
    ...(agent.repo === undefined ? {} : { repo: agent.repo }),
    ...(agent.timeoutMs === undefined ? {} : { timeoutMs: agent.timeoutMs }),
    network: agent.network,
    env: Object.keys(agent.env),
    credentials: agent.credentials.map((c) => ({ name: c.name, source: c.source.raw })),
    ...(agent.repoToken === undefined
      ? {}
      : {
          repoToken: {
            source: agent.repoToken.raw,
            origins: agent.repoTokenOrigins,
            required: agent.repoTokenRequired,
          },
        }),
    resources: {
      memory: r.memory.text,
      memorySwap: r.memorySwap.text,
      ...(r.cpus === undefined ? {} : { cpus: r.cpus }),
      pids: r.pids,
      disk: r.disk.text,
      output: r.output.text,
      ...(r.cache === undefined ? {} : { cache: r.cache.text }),
    },
    capAdd: agent.capAdd,
    ...(agent.maxConcurrent === undefined ? {} : { maxConcurrent: agent.maxConcurrent }),
    ...(agent.schedule === undefined
      ? {}
      : {
          schedule: {
            ...agent.schedule,
            ...(next === undefined ? {} : { next }),
            ...(failed === undefined ? {} : { failed }),
          },
        }),
  };
}
