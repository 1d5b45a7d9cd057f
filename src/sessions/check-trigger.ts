import { z } from 'zod';
import type { AgentConfig } from '../config/types.js';
import {
  AGENT_NAME_MAX,
  IDEMPOTENCY_KEY_PATTERN,
  IDEMPOTENCY_KEY_RULE,
  WORK_UNIT_MAX,
} from '../constants.js';
import { durationProblem, parseDuration } from '../duration.js';
import { describeRepoProblem, firstControl, parseRepoUrl } from '../repo-url.js';
import { WORK_UNIT_CONTROL, WORK_UNIT_EMPTY, workUnitTooLong } from '../work-unit.js';
import { repoTokenUse } from './repo-token.js';
import type { RejectionCode } from './types.js';

/** What a text field of a trigger is called where its bounds are refused, and what to give instead. */
export interface TextWords {
  empty: string;
  long: (length: number, max: number) => string;
}

/**
 * Text of 1 to `max` characters, refused in words, not zod's "Too big: expected string to have <=64
 * characters". Bounds kept as bounds, so that docs/openapi.json states them.
 */
export const boundedText = (max: number, words: TextWords) =>
  z
    .string()
    .min(1, { error: words.empty })
    .max(max, { error: (issue) => words.long(String(issue.input).length, max) });

/** A work unit: see workUnitProblem. */
export const workUnitText = boundedText(WORK_UNIT_MAX, {
  empty: WORK_UNIT_EMPTY,
  long: workUnitTooLong,
}).refine((value) => firstControl(value) === -1, { error: WORK_UNIT_CONTROL });

/**
 * The fields of a trigger, wherever it comes from: the `trigger` request, an injected `trigger` event,
 * `agentd trigger`. Shapes only; checkTrigger decides whether the values make a session.
 */
export const triggerFieldsSchema = {
  agent: boundedText(64, {
    empty: "is empty; name one of the daemon's agents (agentd agents lists them)",
    long: (length) =>
      `has ${length} characters, more than any agent's name (at most ${AGENT_NAME_MAX}); agentd agents lists them`,
  }),
  repo: boundedText(2048, {
    empty: "is empty; give a repository URL, or leave it out for the agent's repo",
    long: (length, max) => `has ${length} characters; a repository URL has at most ${max}`,
  }).optional(),
  workUnit: workUnitText.optional(),
  timeout: boundedText(32, {
    empty: "is empty; give a duration like 90s, 10m or 2h, or leave it out for the agent's timeout",
    long: (length, max) => `has ${length} characters; a duration like 90s, 10m or 2h has at most ${max}`,
  }).optional(),
  /** An idempotency key: a trigger repeating a recent one's key gets that session, not a new one. */
  key: z.string().regex(IDEMPOTENCY_KEY_PATTERN, IDEMPOTENCY_KEY_RULE).optional(),
};
export type TriggerFields = z.infer<z.ZodObject<typeof triggerFieldsSchema>>;

// REJECTION_CODES is in types.ts, which loads no zod: the CLI's reply tables check a rejection's code by it.
export { REJECTION_CODES, type RejectionCode } from './types.js';

/** Rejections that say "not now" rather than "never": the same trigger may succeed later. */
export const RETRYABLE_REJECTIONS: readonly RejectionCode[] = [
  'not_accepting',
  'state_dir_full',
  'state_dir_unwritable',
  'queue_full',
];

export type TriggerRejection = {
  code: Extract<
    RejectionCode,
    'unknown_agent' | 'no_repo' | 'bad_repo' | 'repo_token_withheld' | 'bad_timeout'
  >;
  reason: string;
};
export type TriggerCheck =
  | { ok: true; agent: AgentConfig; repoUrl: string; timeoutMs?: number }
  | ({ ok: false } & TriggerRejection);

/** Decides whether a trigger can become a session, before anything is created. */
export function checkTrigger(agents: readonly AgentConfig[], trigger: TriggerFields): TriggerCheck {
  const agent = agents.find((a) => a.name === trigger.agent);
  if (!agent) {
    const known = agents.map((a) => a.name).join(', ') || 'none';
    return {
      ok: false,
      code: 'unknown_agent',
      reason: `unknown agent "${trigger.agent}"; known agents: ${known}`,
    };
  }
  const rawUrl = trigger.repo ?? agent.repo;
  if (rawUrl === undefined) {
    return {
      ok: false,
      code: 'no_repo',
      reason: `agent "${agent.name}" has no default repo; pass a repository URL or set agents[].repo in the config`,
    };
  }
  const repo = parseRepoUrl(rawUrl);
  if (!repo.ok) {
    return { ok: false, code: 'bad_repo', reason: `repository ${describeRepoProblem(rawUrl, repo)}` };
  }
  // From here on only the normalised URL is used: it is what was checked.
  const repoUrl = repo.repo.url;
  const token = repoTokenUse(agent, repo.repo);
  if (token.kind === 'withheld' && agent.repoTokenRequired) {
    return {
      ok: false,
      code: 'repo_token_withheld',
      reason: `${token.reason}; agent "${agent.name}" sets repo_token_required: true, so it does not run without it`,
    };
  }
  if (trigger.timeout === undefined) return { ok: true, agent, repoUrl };
  const timeoutProblem = durationProblem(trigger.timeout);
  if (timeoutProblem !== undefined) {
    return {
      ok: false,
      code: 'bad_timeout',
      reason: `timeout ${JSON.stringify(trigger.timeout)} ${timeoutProblem}`,
    };
  }
  return { ok: true, agent, repoUrl, timeoutMs: parseDuration(trigger.timeout) as number };
}
