import { z } from 'zod';
import { hostAllowed } from '../config/hosts.js';
import { hideSecretParts } from '../config/quoted.js';
import { type AgentConfig, CATCH_UPS, type HostConfig, OVERLAPS, USER_NAMESPACES } from '../config/types.js';
import { shownWebhookUrl } from '../config/webhook-url.js';
import { timeSchema } from './records.js';

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
  /*
   * What each session can reach besides its repository and network, as loaded (after
   * daemon.user_namespace and the other defaults). Optional: a daemon before they were shown did not
   * send them.
   */
  /** `host`: the container's uids are the host's; `auto`: a range of host uids of its own. */
  userNamespace: z.enum(USER_NAMESPACES).optional(),
  /** Host paths every session sees (`mounts:`), and whether the agent may write to them. */
  mounts: z.array(z.object({ source: z.string(), target: z.string(), readOnly: z.boolean() })).optional(),
  /** `context:`: the host directory mounted read-only at /agentd/context. */
  context: z.string().optional(),
  /** Named volumes that outlive sessions (`caches:`), shared by every session of the agent. */
  caches: z.array(z.object({ name: z.string(), target: z.string() })).optional(),
  /** The Podman hosts its sessions may run on now: its `hosts:` and `host_labels:` over those configured. */
  hosts: z.array(z.string()).optional(),
  /** `host_labels:` as configured (empty: any host its `hosts:` allows). */
  hostLabels: z.record(z.string(), z.string()).optional(),
  /**
   * The agent's own webhooks (`notify:`), besides the daemon's: each URL as agentd shows it (without
   * a query or what looks like a token in it), the source of its signing key, the outcomes told.
   */
  notify: z
    .array(z.object({ url: z.string(), secret: z.string(), outcomes: z.array(z.string()).optional() }))
    .optional(),
  maxConcurrent: z.number().optional(),
  schedule: z
    .object({
      cron: z.string(),
      timezone: z.string().optional(),
      workUnit: z.string().optional(),
      overlap: z.enum(OVERLAPS),
      catchUp: z.enum(CATCH_UPS),
      /** The next firing (ISO 8601), from the daemon's schedule actor; absent when it never fires again. */
      next: timeSchema('next').optional(),
      /** Set when the schedule failed (the daemon's supervision of it): why; it fires no more until a reload. */
      failed: z.string().optional(),
    })
    .optional(),
});
export type AgentView = z.infer<typeof agentViewSchema>;

/** What of the daemon's state the view of an agent needs besides its configuration. */
export interface AgentViewContext {
  /** The hosts configured now (`local` alone without `hosts:`): where the agent may run is read from them. */
  hosts?: readonly Pick<HostConfig, 'name' | 'labels'>[];
  /** The schedule's next firing, as the daemon's schedule actor has it. */
  next?: string;
  /** Why the schedule failed, when it did. */
  failed?: string;
}

export function describeAgent(agent: AgentConfig, context: AgentViewContext = {}): AgentView {
  const { resources: r } = agent;
  const { next, failed } = context;
  return {
    name: agent.name,
    image: agent.image,
    // A token pasted into the command is not repeated (validate warns of it, naming the argument).
    command: agent.command.map(hideSecretParts),
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
    userNamespace: agent.userNamespace,
    mounts: agent.mounts.map((m) => ({ source: m.source, target: m.target, readOnly: m.readOnly })),
    ...(agent.context === undefined ? {} : { context: agent.context }),
    caches: agent.caches.map((c) => ({ name: c.name, target: c.target })),
    ...(context.hosts === undefined
      ? {}
      : { hosts: context.hosts.filter((h) => hostAllowed(agent, h)).map((h) => h.name) }),
    hostLabels: { ...agent.hostLabels },
    notify: agent.notify.map((n) => ({
      url: shownWebhookUrl(n.url),
      secret: n.secret.raw,
      ...(n.outcomes === undefined ? {} : { outcomes: [...n.outcomes] }),
    })),
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
