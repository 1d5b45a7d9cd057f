import type { z } from 'zod';

/** One thing wrong with a request: where (`agent`, `event.sessionId`; `` for the whole line) and what. */
export interface Problem {
  path: string;
  message: string;
}

/** At most this many problems are listed; a last one says how many more there were. */
export const MAX_PROBLEMS = 100;

/** The longest part of a client's field name a problem repeats. */
const FIELD_NAME_SHOWN = 64;

/**
 * An unknown field's name as a problem names it: the client's own, so cut short. A reply must not grow
 * with its request: a name of 16 MiB came back twice (path and message), so 256 clients that read none
 * of it could have the daemon hold 8 GiB of replies for the minute before it lets a stalled one go.
 */
export function shownFieldName(key: string): string {
  return key.length > FIELD_NAME_SHOWN
    ? `${key.slice(0, FIELD_NAME_SHOWN)}... (${key.length} characters)`
    : key;
}

/**
 * Why a line (or an HTTP body) is not JSON, when it is a known mistake of encoding; undefined otherwise.
 * A UTF-8 byte order mark (what PowerShell 5's `Out-File` and `Set-Content -Encoding UTF8` put first) got
 * only "the line is not valid JSON", though the JSON after it was fine; UTF-16 text likewise.
 */
export function encodingMistake(text: string, what: 'line' | 'body'): string | undefined {
  if (text.startsWith('\uFEFF')) {
    return `the ${what} starts with a UTF-8 byte order mark (bytes EF BB BF, U+FEFF), which JSON does not allow; send the JSON without it (PowerShell: -Encoding utf8NoBOM, or [IO.File]::WriteAllText; otherwise strip the first 3 bytes)`;
  }
  // UTF-16 read as UTF-8: its byte order mark FF FE is two U+FFFD, and every other byte of ASCII is NUL.
  const rest = text.replace(/^\uFFFD\uFFFD/, '');
  if (rest.length >= 2 && (rest[0] === '\u0000' || rest[1] === '\u0000')) {
    return `the ${what} holds NUL bytes: it looks like UTF-16 (PowerShell 5's default for > and Out-File); send it as UTF-8 without a byte order mark`;
  }
  return undefined;
}

/** Every problem zod found, one per field (an unknown field each), in the protocol's words; not capped. */
export function problemsOf(error: z.ZodError, requestTypes: readonly string[]): Problem[] {
  const problems: Problem[] = [];
  // A field of the wrong type gets that one problem: zod also runs a length check on anything with a
  // length, so `"agent":[]` was told both "expected string, received array" and "is empty; name an
  // agent", and `"since":[]` "Too small: expected array to have >=1 items".
  const mistyped = new Set(
    error.issues.filter((i) => i.code === 'invalid_type').map((i) => i.path.map(String).join('.')),
  );
  for (const issue of error.issues) {
    const path = issue.path.map(String).join('.');
    if (issue.code !== 'invalid_type' && mistyped.has(path)) continue;
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys.map(shownFieldName)) {
        problems.push({
          path: path === '' ? key : `${path}.${key}`,
          message: 'unknown field',
        });
      }
    } else if (issue.code === 'invalid_union' && path.endsWith('type') && 'options' in issue) {
      const options = (issue.options as unknown[]).map(String);
      problems.push({
        path,
        message: `unknown type; one of ${(path === 'type' ? requestTypes : options).join(', ')}`,
      });
    } else if (issue.code === 'invalid_type' && issue.message.endsWith('received undefined')) {
      problems.push({ path, message: `required: ${issue.expected}` });
    } else {
      problems.push({ path, message: issue.message.replace(/^Invalid input: /, '') });
    }
  }
  return problems;
}

/** The list a reply carries: all problems, or the first MAX_PROBLEMS and one saying how many more. */
export function capped(problems: Problem[]): Problem[] {
  if (problems.length <= MAX_PROBLEMS) return problems;
  const more = problems.length - MAX_PROBLEMS;
  return [...problems.slice(0, MAX_PROBLEMS), { path: '', message: `and ${more} more problem(s)` }];
}

/** One line for a message: every problem, `path: message`, joined. */
export function describeProblems(problems: readonly Problem[]): string {
  return problems.map((p) => (p.path === '' ? p.message : `${p.path}: ${p.message}`)).join('; ');
}
