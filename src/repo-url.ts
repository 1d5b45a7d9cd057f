/**
 * The repository URL rule, in one place: config (`repo`, `repo_token_hosts`) and triggers use it.
 *
 * A URL is checked once and normalised once; the normalised form is what git gets, what is recorded
 * and what the repo token is scoped to. git reads a URL its own way (an `https:/\host/x` that a URL
 * parser accepts is an scp-style ssh address to git; `name::address` runs a remote helper), so the
 * raw text must already have the exact shape of an https://, http:// or git:// URL before it is
 * parsed at all.
 */

export const REPO_URL_MAX = 2048;
export const REPO_SCHEMES = ['https', 'http', 'git'] as const;
export type RepoScheme = (typeof REPO_SCHEMES)[number];

export interface RepoUrl {
  /** The normalised URL: the only form passed to git, recorded and shown. */
  url: string;
  scheme: RepoScheme;
  /** `scheme://host[:port]`, lowercase, without a default port: what the repo token is scoped to. */
  origin: string;
}

export type RepoUrlCheck =
  | { ok: true; repo: RepoUrl }
  /**
   * `problem` reads after the value, e.g. `"ftp://x" must start with ...`. `showValue` is false when
   * the text may hold a password, which must not be echoed into a message or a log.
   */
  | { ok: false; problem: string; showValue: boolean };

const ALLOWED = 'https://, http:// or git://';
const DEFAULT_PORTS: Record<RepoScheme, string> = { https: '443', http: '80', git: '9418' };
/** Host names git and curl read alike: letters, digits, dot, dash, underscore; or a bracketed IPv6. */
const HOST_RE = /^(?:[a-z0-9_.-]+|\[[0-9a-f:.]+\])$/i;

function codePoint(ch: string): string {
  return `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Index of the first C0 or C1 control character (or DEL), -1 when there is none. */
export function firstControl(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return i;
  }
  return -1;
}

function fail(problem: string, showValue = true): RepoUrlCheck {
  return { ok: false, problem, showValue };
}

/** Problems of the raw text that must be caught before any URL parser normalises them away. */
function textProblem(raw: string): RepoUrlCheck | undefined {
  if (raw === '') return fail(`is empty; write a URL like https://example.com/org/repo.git`);
  if (raw.length > REPO_URL_MAX) return fail(`is longer than ${REPO_URL_MAX} characters`, false);
  // Anything shaped like user@ or user:password@ before the host: checked first so it is never echoed.
  if (/^[a-z][a-z0-9+.-]*:[/\\]*[^/\\?#]*@/i.test(raw)) {
    return fail('must not contain a user or password; use repo_token for authentication', false);
  }
  const control = firstControl(raw);
  if (control !== -1) {
    return fail(
      `contains the control character ${codePoint(raw.charAt(control))} at character ${control + 1}; remove it`,
    );
  }
  const space = /\s/u.exec(raw);
  if (space) {
    return fail(
      `contains whitespace (${codePoint(space[0])}) at character ${space.index + 1}; remove it, or write a space in a path as %20`,
    );
  }
  const backslash = raw.indexOf('\\');
  if (backslash !== -1) {
    return fail(
      `contains a backslash at character ${backslash + 1}; git does not read it as a URL would ` +
        '(https:/\\host/x is an ssh address to git): use forward slashes',
    );
  }
  const encoded = /%(?:[01][0-9a-f]|7f)/i.exec(raw);
  if (encoded) {
    return fail(
      `contains the encoded control character ${encoded[0]} at character ${encoded.index + 1}; git decodes it: remove it`,
    );
  }
  if (/^(?:https?|git):\/\//i.test(raw)) return undefined;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(raw)?.[1];
  if (scheme !== undefined && raw.startsWith(`${scheme}::`)) {
    return fail(
      `uses git's "${scheme}::" transport syntax, which runs a program instead of fetching a URL; use ${ALLOWED}`,
    );
  }
  if (scheme !== undefined && /^(?:https?|git)$/i.test(scheme)) {
    return fail(
      `must have two slashes after "${scheme}:" (${scheme.toLowerCase()}://host/path); git reads it as an scp-style ssh address`,
    );
  }
  if (scheme !== undefined && raw.startsWith(`${scheme}://`)) {
    return fail(`uses ${scheme}://; only ${ALLOWED} repositories are supported`);
  }
  if (/^[^/:]+:/.test(raw)) {
    return fail(`is an scp-style ssh address (host:path) to git; only ${ALLOWED} URLs are supported`);
  }
  return fail(`must start with ${ALLOWED}`);
}

/** Checks a repository URL and returns its normalised form, or why it is refused. */
export function parseRepoUrl(raw: string): RepoUrlCheck {
  const check = checkRepoUrl(raw);
  return !check.ok && check.showValue && mayHoldSecret(raw) ? { ...check, showValue: false } : check;
}

/**
 * A URL that may hold a password or a token the user check did not see, and so is not repeated when
 * refused: one with a query or fragment (`?private_token=...`), or with an `@` after a scheme (a
 * password with a `/`, `?` or `#` in it, as AWS CodeCommit's have, ends the authority a URL parser
 * reads before its `@`).
 */
function mayHoldSecret(raw: string): boolean {
  return /[?#]/.test(raw) || (/^[a-z][a-z0-9+.-]*:/i.test(raw) && raw.includes('@'));
}

function checkRepoUrl(raw: string): RepoUrlCheck {
  const early = textProblem(raw);
  if (early) return early;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    return fail('is not a valid URL; write it like https://example.com/org/repo.git');
  }
  const scheme = parsed.protocol.slice(0, -1) as RepoScheme;
  if (parsed.username !== '' || parsed.password !== '') {
    return fail('must not contain a user or password; use repo_token for authentication', false);
  }
  const hostname = parsed.hostname.toLowerCase();
  if (hostname === '') return fail('has no host; write it like https://example.com/org/repo.git');
  if (!HOST_RE.test(hostname)) {
    return fail(
      `has a host git cannot use (${JSON.stringify(hostname)}); use letters, digits, dots and dashes (the xn-- form for other names)`,
    );
  }
  if (parsed.search !== '' || parsed.hash !== '' || raw.includes('?') || raw.includes('#')) {
    return fail('must not have a query (?...) or fragment (#...); git appends its own path to the URL');
  }
  if (parsed.pathname === '' || parsed.pathname === '/') {
    return fail('names no repository; add its path, e.g. https://example.com/org/repo.git');
  }
  const port = parsed.port === DEFAULT_PORTS[scheme] ? '' : parsed.port;
  const origin = `${scheme}://${hostname}${port === '' ? '' : `:${port}`}`;
  return { ok: true, repo: { url: `${origin}${parsed.pathname}`, scheme, origin } };
}

/** Why a repository URL is refused, or undefined when it is acceptable. */
export function repoUrlProblem(raw: string): string | undefined {
  const check = parseRepoUrl(raw);
  return check.ok ? undefined : check.problem;
}

/** A refusal as one sentence naming the value (unless it may hold a password). */
export function describeRepoProblem(raw: string, check: Extract<RepoUrlCheck, { ok: false }>): string {
  return check.showValue ? `${quote(raw)} ${check.problem}` : check.problem;
}

/** JSON quoting that also escapes C1 controls and line separators, so a message prints them inertly. */
function quote(text: string): string {
  let out = '';
  for (const ch of JSON.stringify(text)) {
    const code = ch.charCodeAt(0);
    out +=
      (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029
        ? `\\u${code.toString(16).padStart(4, '0')}`
        : ch;
  }
  return out;
}

export type OriginCheck = { ok: true; origin: string } | { ok: false; problem: string; showValue: boolean };

/** Checks an origin (`https://host[:port]`, for `repo_token_hosts`) and returns its normalised form. */
export function parseOrigin(raw: string): OriginCheck {
  const trimmed = raw.endsWith('/') ? raw.slice(0, -1) : raw;
  const check = parseRepoUrl(`${trimmed}/x`);
  if (!check.ok) return check;
  if (check.repo.url !== `${check.repo.origin}/x`) {
    return {
      ok: false,
      problem: 'must be an origin, scheme://host[:port], without a path; e.g. https://git.example.com',
      showValue: true,
    };
  }
  return { ok: true, origin: check.repo.origin };
}
