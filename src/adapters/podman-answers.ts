import type { z } from 'zod';
import { PodmanError } from './podman-errors.js';

/**
 * Reading what a Podman host answers in JSON. A remote host's answer is not to be trusted, and zod
 * reports every problem it finds at once: an answer to `ps` of a million empty objects (3 MB) became
 * two million issues, 1.3 GB of memory and 5 s of a blocked event loop, and an error message of 357 MB
 * (measured), at every try of the host's reconciliation. So an answer is checked for size before zod
 * sees it, item by item, and the first problem is the error.
 */

/** Entries of any array or object inside an answer: Podman's have a few dozen (labels, env, mounts). */
export const ANSWER_ENTRIES_MAX = 10_000;
/** Characters of the problem an error repeats. */
const PROBLEM_CHARS = 300;

export interface AnswerOf {
  operation: string;
  /** The podman argv (no credential value). */
  argv: string[];
}

/** The items of a JSON array Podman printed (`null` or nothing: none), each as `item` reads it. */
export function parseList<T>(
  item: z.ZodType<T>,
  stdout: string,
  of: AnswerOf,
  maxItems = ANSWER_ENTRIES_MAX,
): T[] {
  const parsed = parseJson(stdout || 'null', of);
  if (parsed === null) return [];
  if (!Array.isArray(parsed)) throw notPodman(of, 'it is not a list');
  if (parsed.length > maxItems) throw notPodman(of, `it lists ${parsed.length} items, more than ${maxItems}`);
  return parsed.map((entry, index) => parseItem(item, entry, of, `item ${index}`));
}

function parseItem<T>(schema: z.ZodType<T>, value: unknown, of: AnswerOf, where: string): T {
  const wide = widest(value);
  if (wide !== undefined) throw notPodman(of, `${where}${wide}`);
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue?.path.length ? `.${issue.path.join('.')}` : '';
  throw notPodman(of, `${where}${path}: ${issue?.message ?? 'unreadable'}`);
}

function parseJson(stdout: string, of: AnswerOf): unknown {
  try {
    return JSON.parse(stdout);
  } catch (error) {
    throw notPodman(of, `it is not JSON (${error instanceof Error ? error.message : String(error)})`);
  }
}

/** Where an array or object inside holds more than ANSWER_ENTRIES_MAX entries (' at PATH: N entries'), if anywhere. */
function widest(value: unknown): string | undefined {
  const stack: { value: unknown; path: string }[] = [{ value, path: '' }];
  while (stack.length > 0) {
    const { value: at, path } = stack.pop() as { value: unknown; path: string };
    if (typeof at !== 'object' || at === null) continue;
    const entries = Array.isArray(at) ? at.length : Object.keys(at).length;
    if (entries > ANSWER_ENTRIES_MAX)
      return ` at ${path || 'its top'}: ${entries} entries, more than ${ANSWER_ENTRIES_MAX}`;
    for (const [key, inner] of Object.entries(at)) {
      // The path named in the error; a deep one is cut (it would grow with the square of the depth).
      if (typeof inner === 'object' && inner !== null)
        stack.push({ value: inner, path: path.length > 100 ? path : `${path}.${key}` });
    }
  }
  return undefined;
}

function notPodman(of: AnswerOf, problem: string): PodmanError {
  const cut = problem.length > PROBLEM_CHARS ? `${problem.slice(0, PROBLEM_CHARS)}…` : problem;
  return new PodmanError(
    'PODMAN_FAILED',
    `${of.operation}: the answer is not what Podman prints (${cut}); check that the host's url leads to a Podman API service`,
    { operation: of.operation, argv: of.argv, stderr: '' },
  );
}
