import { z } from 'zod';
import { AGENT_NAME_MAX, MAX_LINE_BYTES, NOTIFY_BACKOFF_MAX_MS } from '../constants.js';
import { ageProblem, durationProblem, MAX_DURATION_MS, parseDuration } from '../duration.js';
import { OUTCOME_KINDS } from '../outcome-kinds.js';
import { OUTCOMES } from '../outcomes.js';
import { describeRepoProblem, parseOrigin, parseRepoUrl, type RepoUrlCheck } from '../repo-url.js';
import { HOST_NAME_MAX, HOST_NAME_RE, hostUrlProblem } from './hosts.js';
import { HTTP_SCOPES, parseListen } from './http.js';
import { CONTEXT_TARGET, firstOverlaps, sourceProblem, targetClash, targetProblem } from './mounts.js';
import { hiddenValue, looksLikeSecret, quoted } from './quoted.js';
import {
  capabilityName,
  formatSize,
  MAX_CPUS,
  MIN_CACHE_BYTES,
  MIN_DISK_BYTES,
  MIN_MEMORY_BYTES,
  MIN_OUTPUT_BYTES,
  MIN_PIDS,
  minFreeProblem,
  parseSize,
  RESOURCE_DEFAULTS,
  sizeProblem,
} from './resources.js';
import { cronProblem, timezoneProblem, workUnitTemplateProblem } from './schedule.js';
import { CATCH_UPS, OVERLAPS, USER_NAMESPACES } from './types.js';
import { FETCH_BLOCKED_PORTS, shownWebhookUrl } from './webhook-url.js';

/** Zod schema for the raw agentd.yaml. Messages name what is expected so the operator can fix the file. */

export const NETWORKS = ['bridge', 'none', 'host'] as const;
// In types.ts, which loads no zod: the CLI's reply tables check an agent's view by them.
export { CATCH_UPS, OVERLAPS, USER_NAMESPACES } from './types.js';
export const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const AGENT_NAME_RE = /^[a-z_][a-z0-9_-]*$/;
/** setTimeout fires at once for delays above 2^31-1 ms, so longer durations would end sessions immediately. */
export { MAX_DURATION_MS };

const RESERVED_USERS = new Set([
  ...'root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc gnats'.split(' '),
  ...'nobody _apt messagebus sshd'.split(' '),
]);
/** agentd sets these inside the session itself; letting config override them would break the setup script. */
const RESERVED_ENV = new Set(['HOME', 'PATH', 'USER', 'LOGNAME', 'SHELL', 'PWD']);

/**
 * A name every JavaScript object already has (__proto__, constructor, toString...): names are keys of
 * the daemon's maps, where `__proto__` replaced an object's prototype instead of adding a key (an agent
 * so named had a schedule nothing could see or stop) and `constructor` is found where nothing was put.
 */
export function objectKeyProblem(name: string): string | undefined {
  return name in Object.prototype
    ? `${describe(name)} is a name every JavaScript object has, which agentd cannot keep apart; pick another name`
    : undefined;
}

type Issue = z.core.$ZodRawIssue;

export function isReservedUserName(name: string): boolean {
  return RESERVED_USERS.has(name) || name.startsWith('systemd-');
}

export function isReservedEnvName(name: string): boolean {
  return RESERVED_ENV.has(name) || name.startsWith('AGENTD_') || name.startsWith('GIT_CONFIG');
}

/**
 * What the dynamic loader and the C library read from the environment (glibc's list for setuid
 * programs): set for a session, it would reach the root setup step too, which could then load a
 * library from a cache an earlier session filled.
 */
const LOADER_ENV = new Set([
  'GCONV_PATH',
  'GETCONF_DIR',
  'GLIBC_TUNABLES',
  'HOSTALIASES',
  'LOCALDOMAIN',
  'LOCPATH',
  'MALLOC_TRACE',
  'NIS_PATH',
  'NLSPATH',
  'RESOLV_HOST_CONF',
  'RES_OPTIONS',
  'TZDIR',
]);

/**
 * The root setup step's own shell variables (src/runner/setup-script.ts; a unit test keeps the two in
 * step): a credential exported there, or a variable set for the session, of one of these names would
 * change what the step does as root (`drop` is how it starts the command).
 */
export const SETUP_STEP_VARIABLES: ReadonlySet<string> = new Set(
  (
    'IFS as_git as_user at c caps copy_dir copy_max copy_out creds d drop ended f final forward got grace ' +
    'head home i image_path k left line m n o oom oom_first oom_kills p pending perm perms pid ran reset resolved ' +
    'root_only s say secrets skel status stop_pipe t tag tok tok_at tok_size uid user v value w watchdog'
  ).split(' '),
);

function isLoaderEnvName(name: string): boolean {
  return name.startsWith('LD_') || LOADER_ENV.has(name);
}

/** Short human rendering of a YAML value for messages. */
export function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'empty';
  if (typeof value === 'string') return quoted(value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

/** Error map for a wrong type: `expected` reads like "a whole number, e.g. 4". Other issue codes fall through. */
function typeError(expected: string, missing?: string) {
  return (iss: Issue): string | undefined => {
    if (iss.code !== 'invalid_type') return undefined;
    if (iss.input === undefined) return `is required; ${missing ?? `set it to ${expected}`}`;
    if (iss.input === null) return `is empty; set it to ${expected} or remove the key`;
    return `must be ${expected}, not ${describe(iss.input)}`;
  };
}

/** A string checked by `check`, which returns a problem message or undefined. */
function checkedString(expected: string, check: (value: string) => string | undefined, missing?: string) {
  return z.string({ error: typeError(expected, missing) }).superRefine((value, ctx) => {
    const problem = check(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, input: value });
  });
}

function wholeNumber(min: number, example: number) {
  const expected = `a whole number of at least ${min}, e.g. ${example}`;
  return z
    .int({
      error: (iss) => {
        if (typeof iss.input === 'string' && /^\s*\d+\s*$/.test(iss.input)) {
          return `must be a number, not the text ${describe(iss.input)}; remove the quotes`;
        }
        return typeError(expected)(iss);
      },
    })
    .min(min, { error: (iss) => `${describe(iss.input)} is too small; use ${min} or more` });
}

const notEmpty = (what: string) => (value: string) =>
  value.trim() === '' ? `must not be empty; set it to ${what}` : undefined;

function duration() {
  return z
    .string({
      error: (iss) =>
        typeof iss.input === 'number'
          ? `${iss.input} is not a duration; write a number with a unit like 90s, 10m or 2h`
          : typeError('a duration like 90s, 10m or 2h')(iss),
    })
    .superRefine((value, ctx) => {
      const problem = durationProblem(value);
      if (problem !== undefined)
        ctx.addIssue({ code: 'custom', message: `${describe(value)} ${problem}`, input: value });
    });
}

export function envNameProblem(name: string): string | undefined {
  if (!ENV_NAME_RE.test(name)) {
    return `${describe(name)} is not a valid environment variable name; use letters, digits and _ and do not start with a digit`;
  }
  const key = objectKeyProblem(name);
  if (key !== undefined) return key;
  if (isReservedEnvName(name)) {
    return (
      `${describe(name)} is reserved: agentd sets HOME, PATH, USER, LOGNAME, SHELL, PWD and names starting ` +
      'with AGENTD_ or GIT_CONFIG itself; pick another name'
    );
  }
  if (SETUP_STEP_VARIABLES.has(name)) {
    return `${describe(name)} is a variable of the setup step that starts every session; pick another name`;
  }
  if (isLoaderEnvName(name)) {
    return (
      `${describe(name)} is read by the dynamic loader, also in the root setup step that starts every ` +
      `session: set it in the command instead, e.g. command: ["env", "${name}=...", "my-agent"]`
    );
  }
  return undefined;
}

function agentNameProblem(name: string): string | undefined {
  if (!AGENT_NAME_RE.test(name)) {
    return (
      `${describe(name)} is not a valid agent name; use lowercase letters, digits, _ and -, ` +
      'starting with a letter or _ (it becomes the user name inside the container)'
    );
  }
  if (name.length > AGENT_NAME_MAX) {
    return `${describe(name)} is ${name.length} characters long; agent names are at most ${AGENT_NAME_MAX} characters`;
  }
  if (isReservedUserName(name)) return `${describe(name)} is a reserved system user name; pick another name`;
  return objectKeyProblem(name);
}

function imageProblem(image: string): string | undefined {
  // A leading '-' would be read by podman as an option, and whitespace is never part of a reference.
  if (image.trim() === '' || image.startsWith('-') || /\s/.test(image)) {
    return `${describe(image)} is not an image reference; write a name like localhost/agentd-base:bookworm`;
  }
  // After an @ comes a digest (name@sha256:<hex>) and nothing else. `docker://user:password@registry/x`
  // was said valid and shown by validate, logged at start and reload, and then refused by Podman
  // ("invalid reference format"): the value is not shown, it may hold a password.
  const at = image.indexOf('@');
  if (at !== -1 && !DIGEST_RE.test(image.slice(at + 1))) {
    return (
      'is not an image reference: what follows its @ must be a digest like sha256:<64 hex digits> ' +
      '(the value is not shown: it may hold a password); a registry login goes to podman login, never into the image name'
    );
  }
  return undefined;
}

/** A digest of an image reference, as Podman's reference grammar has it (`sha256:<hex>`). */
const DIGEST_RE = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;

function repoProblem(repo: string): string | undefined {
  const check = parseRepoUrl(repo);
  return check.ok ? undefined : repoUrlProblem(repo, check);
}

/** A repository URL's problem, without the URL when it looks like a credential (quoted's rule). */
function repoUrlProblem(raw: string, check: Extract<RepoUrlCheck, { ok: false }>): string {
  return check.showValue && looksLikeSecret(raw)
    ? `${hiddenValue(raw.length)} ${check.problem}`
    : describeRepoProblem(raw, check);
}

function originProblem(origin: string): string | undefined {
  const check = parseOrigin(origin);
  if (!check.ok) return repoUrlProblem(origin, check);
  if (check.origin.startsWith('git://')) {
    return `${describe(origin)}: git:// never carries a token; list https:// origins (or http:// with allow_insecure_http: true)`;
  }
  return undefined;
}

/** Credential source syntax before relative file paths are resolved. */
export type SourceSyntax = { kind: 'env'; name: string } | { kind: 'file'; path: string };

/** Parses `env:NAME`, `file:PATH` or a bare `NAME`; returns a problem message when the text is none of these. */
export function parseSourceSyntax(raw: string): SourceSyntax | { problem: string } {
  if (raw.startsWith('env:')) {
    const name = raw.slice('env:'.length);
    if (ENV_NAME_RE.test(name)) return { kind: 'env', name };
    // env:sk-proj-…, env:xoxb-…, env:glpat-…, a JWT: most tokens are no variable name at all.
    if (looksLikeValue(name)) {
      return {
        problem:
          'is not a valid environment variable name and looks like a credential value pasted after env: (it ' +
          "is not repeated here): put the value in the daemon's environment under a name of letters, digits " +
          'and _ and write env:NAME',
      };
    }
    return {
      problem: `${describe(raw)}: ${describe(name)} is not a valid environment variable name; use letters, digits and _ and do not start with a digit`,
    };
  }
  if (raw.startsWith('file:')) {
    const path = raw.slice('file:'.length);
    if (path === '') return { problem: `${describe(raw)} has no path; write file:/absolute/path` };
    if (path.startsWith('~')) {
      return { problem: `${describe(raw)}: ~ is not expanded; write the absolute path` };
    }
    if (looksLikePastedPath(path)) {
      return {
        problem:
          'looks like a credential value pasted after file:, not a path (it is not repeated here): put the ' +
          'value in a file and write file:/absolute/path (for a file of such a name beside the configuration, write file:./NAME)',
      };
    }
    return { kind: 'file', path };
  }
  if (looksLikeValue(raw)) {
    return {
      problem:
        'looks like a credential value, not a source (it is not repeated here): put the value in the ' +
        "daemon's environment or a file and write env:NAME or file:/absolute/path (a bare NAME is upper " +
        'case; write env:name for a variable with another name)',
    };
  }
  if (ENV_NAME_RE.test(raw)) return { kind: 'env', name: raw };
  return {
    problem: `${describe(raw)} is not a credential source; use env:NAME, file:/absolute/path or a bare NAME`,
  };
}

/**
 * A bare source that is a token pasted in place of a name (ghp_…, sk-…): 16 characters or more, not
 * an environment variable's usual upper-case name. Refused without being repeated, so that it reaches
 * neither validate's output nor, as the name of an unset variable, a session's error.
 */
function looksLikeValue(raw: string): boolean {
  return raw.length >= 16 && !/^[A-Z_][A-Z0-9_]*$/.test(raw);
}

/**
 * An `env:` name that looks like a token pasted in place of a name: 16 characters or more, with upper
 * and lower case letters and digits (env:ghp_…), or with letters and digits in one run without a `_`
 * (hex, as `openssl rand -hex 32` makes them and Twilio and Datadog hand them out, when it begins with
 * a letter; an AWS access key id, AKIA…). Such a name is not repeated in messages, which reach records,
 * logs and webhooks; a long name of words (my_service_api_token, GITHUB_TOKEN_2024) is a name.
 */
export function looksLikeTokenName(name: string): boolean {
  if (name.length < 16 || !/[0-9]/.test(name)) return false;
  if (/[a-z]/.test(name) && /[A-Z]/.test(name)) return true;
  return !name.includes('_') && /[A-Za-z]/.test(name);
}

/**
 * A `file:` path that is a token pasted in place of a path (file:ghp_…): a bare name, without a
 * directory or a dot, that looks like a token (looksLikeTokenName), or a file's content (a PEM key,
 * JSON: looksLikePastedFile). Refused without being repeated:
 * as a path it would be shown by `agents`, validate and doctor, and, as a file that is not there, by
 * a session's error, which reaches records, logs and webhooks.
 */
function looksLikePastedPath(path: string): boolean {
  return (
    (!path.includes('/') && !path.includes('.') && looksLikeTokenName(path)) || looksLikePastedFile(path)
  );
}

/**
 * A file's content pasted in place of its path: a line break (no path has one), PEM armour (a private
 * key), or a JSON document (a service account's key file). Refused without being repeated, as
 * looksLikePastedPath is.
 */
function looksLikePastedFile(text: string): boolean {
  return /[\r\n]/.test(text) || text.includes('-----BEGIN') || text.trimStart().startsWith('{');
}

/** A path setting that holds a key itself: why it is refused, without repeating it. */
function pastedKeyProblem(text: string): string | undefined {
  return looksLikePastedFile(text)
    ? "looks like a key pasted in place of its file's path (it is not repeated here): put it in a file " +
        "only the daemon's user can read (mode 0600) and write the file's absolute path"
    : undefined;
}

/** What messages show for such a source instead of what was written. */
export const TOKEN_LIKE_SOURCE = 'env:(a name that looks like a credential value, not shown)';

function source(missing?: string) {
  return checkedString(
    'a credential source like env:NAME or file:/absolute/path',
    (raw) => {
      const parsed = parseSourceSyntax(raw);
      return 'problem' in parsed ? parsed.problem : undefined;
    },
    missing,
  );
}

/** strictObject whose wrong-type message says what mapping was expected. Unknown keys are reported by load.ts. */
function strict<T extends z.core.$ZodLooseShape>(shape: T, expected: string) {
  return z.strictObject(shape, { error: typeError(expected) });
}

/** A size like 2g: a string with a unit, or a whole number of bytes. */
function size(min: number, example: string) {
  return z
    .union([z.string(), z.number()], {
      error: (iss) =>
        iss.input === null
          ? `is empty; set it to a size like ${example} or remove the key`
          : `must be a size like ${example}, not ${describe(iss.input)}`,
    })
    .superRefine((value, ctx) => {
      const problem = sizeProblem(value, min, describe(value));
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, input: value });
    });
}

/**
 * A floor of free space: a share of the filesystem (`5%`, at most 50%) or a size (`2g`); `0` turns it off.
 */
function minFree() {
  return z
    .union([z.string(), z.number()], {
      error: (iss) =>
        iss.input === null
          ? 'is empty; set it to a share of the filesystem like 5% or a size like 2g, or remove the key'
          : `must be a share of the filesystem like 5% or a size like 2g, not ${describe(iss.input)}`,
    })
    .superRefine((value, ctx) => {
      const problem = minFreeProblem(value, describe(value));
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, input: value });
    });
}

const resourcesShape = {
  memory: size(MIN_MEMORY_BYTES, '2g').optional(),
  memory_swap: size(MIN_MEMORY_BYTES, '4g').optional(),
  cpus: z
    .number({
      error: (iss) =>
        typeof iss.input === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(iss.input)
          ? `must be a number, not the text ${describe(iss.input)}; remove the quotes`
          : typeError('a number of CPUs like 1.5')(iss),
    })
    .min(0.01, { error: (iss) => `${describe(iss.input)} is too small; use 0.01 or more, e.g. 0.5` })
    .max(MAX_CPUS, { error: (iss) => `${describe(iss.input)} is too large; use at most ${MAX_CPUS}` })
    .optional(),
  pids: wholeNumber(MIN_PIDS, 4096).optional(),
  disk: size(MIN_DISK_BYTES, '1g').optional(),
  output: size(MIN_OUTPUT_BYTES, '64m').optional(),
  cache: size(MIN_CACHE_BYTES, '2g').optional(),
};

function resources() {
  return strict(
    resourcesShape,
    'a mapping of limits like { memory: 2g, cpus: 1.5, pids: 4096, disk: 1g, output: 64m }',
  ).nullish();
}

function age() {
  return z
    .string({
      error: (iss) =>
        typeof iss.input === 'number'
          ? `${iss.input} is not an age; write a number with a unit like 30d or 12h`
          : typeError('an age like 30d or 12h')(iss),
    })
    .superRefine((value, ctx) => {
      const problem = ageProblem(value);
      if (problem !== undefined)
        ctx.addIssue({ code: 'custom', message: `${describe(value)} ${problem}`, input: value });
    });
}

const mountShape = {
  source: checkedString(
    'an absolute host path like /srv/data',
    sourceProblem,
    'say which host directory or file to mount, e.g. source: /srv/data',
  ),
  target: checkedString(
    'an absolute path inside the container like /data',
    targetProblem,
    'say where the agent sees it, e.g. target: /data',
  ),
  read_only: flag('false lets the agent write to the host path; default true'),
};

export const CACHE_NAME_RE = /^[a-z0-9][a-z0-9_.-]*$/;
export const CACHE_NAME_MAX = 32;

function cacheNameProblem(name: string): string | undefined {
  if (!CACHE_NAME_RE.test(name) || name.length > CACHE_NAME_MAX) {
    return `${describe(name)} is not a cache name; use lowercase letters, digits, _, . and -, starting with a letter or digit, at most ${CACHE_NAME_MAX} characters`;
  }
  return objectKeyProblem(name);
}

const caches = z.record(
  z.string().superRefine((name, ctx) => {
    const problem = cacheNameProblem(name);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, input: name });
  }),
  checkedString('an absolute path inside the container like /home/AGENT/.npm', targetProblem),
  { error: typeError('a mapping of NAME: /path/in/container, e.g. { npm: /home/reviewer/.npm }') },
);

const exitCodes = z.record(
  z.string().superRefine((code, ctx) => {
    if (!/^\d+$/.test(code) || Number(code) > 255) {
      ctx.addIssue({
        code: 'custom',
        message: `${describe(code)} is not an exit code; use a whole number from 0 to 255`,
        input: code,
      });
    }
  }),
  z.enum(OUTCOME_KINDS, {
    error: (iss) => `${describe(iss.input)} is not an outcome kind; use one of ${OUTCOME_KINDS.join(', ')}`,
  }),
  { error: typeError('a mapping of exit code: kind, e.g. { 3: blocked, 10: work_failed }') },
);

function capability() {
  return checkedString('a capability name like NET_BIND_SERVICE', (raw) =>
    capabilityName(raw) === undefined
      ? `${describe(raw)} is not a Linux capability; use a name like NET_BIND_SERVICE or SYS_NICE (the CAP_ prefix is optional)`
      : undefined,
  );
}

function flag(meaning: string) {
  return z
    .boolean({
      error: (iss) =>
        typeof iss.input === 'string' && /^(true|false)$/i.test(iss.input.trim())
          ? `must be true or false, not the text ${describe(iss.input)}; remove the quotes`
          : typeError(`true or false (${meaning})`)(iss),
    })
    .optional();
}

/** Where an outcome notification may be sent: http(s), with a host, without a user or password. */
export function webhookUrlProblem(raw: string): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // shownWebhookUrl hides a key in a URL it can read; one it cannot is not repeated at all.
    return "is not a URL (not repeated here: a webhook's URL may hold its key); write one like https://hooks.example.com/agentd";
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return `${describe(shownWebhookUrl(raw))}: only https:// and http:// URLs receive notifications`;
  }
  if (url.username !== '' || url.password !== '') {
    return `${describe(shownWebhookUrl(raw))} must not contain a user or password (not repeated here); the receiver checks the signature instead`;
  }
  if (url.port !== '' && FETCH_BLOCKED_PORTS.has(Number(url.port))) {
    return `${describe(shownWebhookUrl(raw))}: port ${url.port} is one that fetch never connects to (the Fetch standard's blocked ports: mail, IRC, SIP, X11 and the like), so every notification would fail; have the receiver listen on another port`;
  }
  return undefined;
}

export const NOTIFY_ATTEMPTS_MAX = 10;

const notifyShape = {
  url: checkedString(
    'a URL like https://hooks.example.com/agentd',
    webhookUrlProblem,
    'say where to POST, e.g. url: https://hooks.example.com/agentd',
  ),
  secret: source('give the key of the signature, e.g. secret: env:AGENTD_HOOK_SECRET'),
  attempts: wholeNumber(1, 5)
    .max(NOTIFY_ATTEMPTS_MAX, {
      error: (iss) => `${describe(iss.input)} is too many; use at most ${NOTIFY_ATTEMPTS_MAX}`,
    })
    .optional(),
  backoff: duration()
    .refine((value) => (parseDuration(value) ?? 0) <= NOTIFY_BACKOFF_MAX_MS, {
      error: (iss) =>
        `${describe(iss.input)} is longer than 5m, the longest wait between attempts (the doubling stops there); use 5m or less`,
    })
    .optional(),
  outcomes: z
    .array(
      z.enum(OUTCOMES, {
        error: (iss) => `${describe(iss.input)} is not an outcome; use ${OUTCOMES.join(', ')}`,
      }),
      { error: typeError(`a list of outcomes like [failed, timed_out] (${OUTCOMES.join(', ')})`) },
    )
    .min(1, {
      error: `is empty; leave outcomes out to be told of every outcome, or list some of ${OUTCOMES.join(', ')}`,
    })
    .optional(),
};

function notify() {
  return z
    .array(strict(notifyShape, 'a mapping with url: and secret:'), {
      error: typeError('a list of { url, secret } mappings'),
    })
    .nullish();
}

export const TOKEN_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

const tokenShape = {
  name: checkedString(
    'a token name like ci',
    (name) =>
      TOKEN_NAME_RE.test(name)
        ? objectKeyProblem(name)
        : `${describe(name)} is not a token name; use letters, digits, _, . and - (at most 64), starting with a letter or digit`,
    'name the token (its name is logged with every request, never its value), e.g. name: ci',
  ),
  source: source('say where the token comes from, e.g. source: file:/etc/agentd/tokens/ci'),
  scopes: z
    .array(
      z.enum(HTTP_SCOPES, {
        error: (iss) =>
          `${describe(iss.input)} is not a scope; use ${HTTP_SCOPES.join(', ')} (admin: all of them and reload)`,
      }),
      { error: typeError(`a list of scopes like [trigger, read] (${HTTP_SCOPES.join(', ')})`) },
    )
    .min(1, { error: `is empty; give at least one of ${HTTP_SCOPES.join(', ')}` }),
};

const tlsShape = {
  cert: checkedString(
    'the path of a PEM certificate (chain) file',
    (text) => pastedKeyProblem(text) ?? notEmpty('a file like /etc/agentd/tls/cert.pem')(text),
  ),
  key: checkedString(
    'the path of a PEM private key file',
    (text) => pastedKeyProblem(text) ?? notEmpty('a file like /etc/agentd/tls/key.pem')(text),
  ),
};

const httpShape = {
  listen: checkedString(
    'an address like 127.0.0.1:7391 or unix:/run/agentd/http.sock',
    (text) => {
      const parsed = parseListen(text);
      return 'problem' in parsed ? parsed.problem : undefined;
    },
    'say where the API listens, e.g. listen: 127.0.0.1:7391',
  ),
  tokens: z
    .array(strict(tokenShape, 'a mapping with name:, source: and scopes:'), {
      error: typeError(
        'a list of { name, source, scopes } mappings',
        'give at least one token: every /v1 request needs one',
      ),
    })
    .min(1, { error: 'is empty; give at least one token: every /v1 request needs one' }),
  tls: strict(tlsShape, 'a mapping with cert: and key:').optional(),
  // No request is longer than the socket's longest line (a trigger with its largest request text and
  // inputs, base64-encoded): a larger limit only lets one token's bodies hold more of the daemon's memory.
  body_limit: size(1024, '2m')
    .superRefine((value, ctx) => {
      const bytes = parseSize(value)?.bytes;
      if (bytes !== undefined && bytes > MAX_LINE_BYTES) {
        ctx.addIssue({
          code: 'custom',
          message: `${describe(value)} is more than any request needs; the most is ${formatSize(MAX_LINE_BYTES)} (a trigger with the largest request text and inputs)`,
          input: value,
        });
      }
    })
    .optional(),
};

const userNamespace = z.enum(USER_NAMESPACES, {
  error: (iss) =>
    iss.code === 'invalid_value'
      ? `${describe(iss.input)} is not allowed; must be host (the default: no user namespace) or auto (each session its own range of host uids)`
      : undefined,
});

const daemonShape = {
  socket: checkedString(
    'a path for the Unix socket',
    notEmpty('a path like /run/agentd/agentd.sock'),
  ).optional(),
  state_dir: checkedString('a directory path', notEmpty('a directory like /var/lib/agentd')).optional(),
  max_sessions: wholeNumber(1, 4).optional(),
  stop_grace: duration().optional(),
  podman_timeout: duration().optional(),
  pull_timeout: duration().optional(),
  log_max_bytes: wholeNumber(4096, 1_048_576).optional(),
  history: wholeNumber(0, 200).optional(),
  host_probe_interval: duration().optional(),
  host_probe_timeout: duration().optional(),
  host_down_grace: duration().optional(),
  records_dir: checkedString(
    'a directory path',
    notEmpty('a directory like /var/lib/agentd/records'),
  ).optional(),
  records_max_age: age().optional(),
  records_max_size: size(1024 ** 2, '10g').optional(),
  records_max_count: wholeNumber(1, 100_000).optional(),
  records_min_free: minFree().optional(),
  resources: resources(),
  // The user_namespace of every agent that sets none.
  user_namespace: userNamespace.optional(),
  notify: notify(),
  http: strict(httpShape, 'a mapping with listen: and tokens:').optional(),
};

const credentialShape = {
  name: checkedString(
    'an environment variable name like GITHUB_TOKEN',
    envNameProblem,
    'set the variable name the session sees, e.g. name: GITHUB_TOKEN',
  ),
  source: source('say where the value comes from, e.g. source: env:AGENTD_GITHUB_TOKEN'),
};

const commandArg = z
  .string({
    error: (iss) =>
      typeof iss.input === 'number' || typeof iss.input === 'boolean'
        ? `${iss.input} is not text; quote it ("${iss.input}") so the argument is passed exactly as written`
        : typeError('a string')(iss),
  })
  .min(1, { error: 'is an empty argument; remove it or write the intended value' });

const command = z
  .array(commandArg, {
    error: (iss) =>
      typeof iss.input === 'string'
        ? 'must be a list of arguments like ["reviewer", "exec"], not a string; agentd runs it without a shell ' +
          '(write ["sh", "-c", "..."] for shell syntax)'
        : typeError(
            'a list of arguments like ["reviewer", "exec"]',
            'give the program and its arguments, e.g. command: ["reviewer", "exec"]',
          )(iss),
  })
  .min(1, { error: 'is empty; give the program and its arguments, e.g. ["reviewer", "exec"]' });

const envValue = z.union([z.string(), z.number(), z.boolean()], {
  error: (iss) =>
    iss.input === null
      ? 'is empty; write "" for an empty value'
      : `must be a string, not ${describe(iss.input)}; env values are plain text`,
});

const env = z.record(
  z.string().superRefine((name, ctx) => {
    const problem = envNameProblem(name);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, input: name });
  }),
  envValue,
  { error: typeError('a mapping of NAME: value pairs, e.g. { LOG_LEVEL: info }') },
);

function choice<T extends readonly [string, ...string[]]>(values: T, meaning: string) {
  return z
    .enum(values, {
      error: (iss) =>
        iss.code === 'invalid_value'
          ? `${describe(iss.input)} is not allowed; must be one of ${values.join(', ')} (${meaning})`
          : typeError(`one of ${values.join(', ')}`)(iss),
    })
    .optional();
}

const cron = checkedString(
  'a cron expression like "0 3 * * *"',
  cronProblem,
  'give the cron expression, e.g. cron: "0 3 * * *"',
);

const scheduleShape = {
  cron,
  timezone: checkedString('an IANA time zone like Europe/Berlin', timezoneProblem).optional(),
  work_unit: checkedString('a work unit template like "nightly-{date}"', workUnitTemplateProblem).optional(),
  overlap: choice(OVERLAPS, 'skip: no firing while a scheduled session of the agent is queued or running'),
  catch_up: choice(CATCH_UPS, 'latest: after downtime, run the latest missed firing once'),
};

/** `schedule: "0 3 * * *"` is short for the mapping `schedule: { cron: "0 3 * * *" }`. */
const schedule = z.preprocess(
  (value) => (typeof value === 'string' ? { cron: value } : value),
  strict(scheduleShape, 'a cron expression like "0 3 * * *" or a mapping with cron:'),
);

function hostNameProblem(name: string): string | undefined {
  if (!HOST_NAME_RE.test(name) || name.length > HOST_NAME_MAX) {
    return `${describe(name)} is not a host name; use lowercase letters, digits, _ and -, starting with a letter or digit, at most ${HOST_NAME_MAX} characters`;
  }
  return objectKeyProblem(name);
}

const LABEL_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9_./-]*$/;

/** `labels:` of a host and `host_labels:` of an agent: plain names and text values. */
const hostLabels = z.record(
  z.string().superRefine((key, ctx) => {
    if (!LABEL_KEY_RE.test(key) || key.length > 63) {
      ctx.addIssue({
        code: 'custom',
        message: `${describe(key)} is not a label name; use letters, digits, _, ., / and -, at most 63 characters`,
        input: key,
      });
    }
    const problem = objectKeyProblem(key);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, input: key });
  }),
  z.union([z.string(), z.number(), z.boolean()], {
    error: (iss) =>
      iss.input === null
        ? 'is empty; write "" for an empty value'
        : `must be a text value, not ${describe(iss.input)}`,
  }),
  { error: typeError('a mapping of NAME: value pairs, e.g. { gpu: "yes", zone: eu }') },
);

const hostShape = {
  name: checkedString('a host name like build1', hostNameProblem, 'give the host a name like build1'),
  url: checkedString(
    'a Podman url like unix:///run/podman/podman.sock',
    hostUrlProblem,
    "say how to reach the host's Podman, e.g. url: ssh://agentd@build1.example/run/podman/podman.sock",
  ).optional(),
  identity: checkedString(
    'an absolute path to a private key like /etc/agentd/id_ed25519',
    (value) =>
      pastedKeyProblem(value) ??
      (value.startsWith('/')
        ? undefined
        : `${describe(value)} is not an absolute path; write the full path of the key`),
  ).optional(),
  insecure: flag('true allows tcp://, which has neither encryption nor authentication'),
  max_sessions: wholeNumber(1, 4).optional(),
  labels: hostLabels.nullish(),
};

const agentShape = {
  name: checkedString('an agent name like reviewer', agentNameProblem, 'give the agent a name like reviewer'),
  image: checkedString(
    'a container image like localhost/agentd-base:bookworm',
    imageProblem,
    'set the container image to run, e.g. image: localhost/agentd-base:bookworm',
  ),
  command,
  repo: checkedString('a repository URL like https://example.com/org/repo.git', repoProblem).optional(),
  timeout: duration().optional(),
  network: z
    .enum(NETWORKS, {
      error: (iss) =>
        iss.code === 'invalid_value'
          ? `${describe(iss.input)} is not allowed; must be one of ${NETWORKS.join(', ')}`
          : undefined,
    })
    .optional(),
  user_namespace: userNamespace.optional(),
  // null is accepted for collections so that commenting out every entry does not make the file invalid.
  env: env.nullish(),
  credentials: z
    .array(strict(credentialShape, 'a mapping with name: and source:'), {
      error: typeError('a list of { name, source } mappings'),
    })
    .nullish(),
  repo_token: source().optional(),
  repo_token_hosts: z
    .array(checkedString('an origin like https://git.example.com', originProblem), {
      error: typeError('a list of origins like ["https://git.example.com"]'),
    })
    .nullish(),
  repo_token_required: flag('reject triggers whose repository may not receive repo_token'),
  allow_insecure_http: flag('allow repo_token over plain http://, for a loopback test server'),
  resources: resources(),
  cap_add: z
    .array(capability(), { error: typeError('a list of capability names like ["NET_BIND_SERVICE"]') })
    .nullish(),
  mounts: z
    .array(strict(mountShape, 'a mapping with source:, target: and optionally read_only:'), {
      error: typeError('a list of { source, target, read_only } mappings'),
    })
    .nullish(),
  context: checkedString('an absolute host directory like /srv/methodology', sourceProblem).optional(),
  caches: caches.nullish(),
  exit_codes: exitCodes.nullish(),
  schedule: schedule.optional(),
  // The spelling of the original design; the same as schedule.work_unit.
  schedule_work_unit: checkedString(
    'a work unit template like "nightly-{date}"',
    workUnitTemplateProblem,
  ).optional(),
  max_concurrent: wholeNumber(1, 1).optional(),
  hosts: z
    .array(checkedString('a host name', hostNameProblem), {
      error: typeError('a list of host names like ["build1", "build2"]'),
    })
    .nullish(),
  host_labels: hostLabels.nullish(),
  notify: notify(),
};

const topShape = {
  daemon: strict(daemonShape, 'a mapping of daemon settings').nullish(),
  hosts: z
    .array(strict(hostShape, 'a mapping with name:, url: and optionally identity:, max_sessions:, labels:'), {
      error: typeError('a list of hosts, each like { name: build1, url: unix:///run/podman/podman.sock }'),
    })
    .nullish(),
  agents: z
    .array(strict(agentShape, 'a mapping with name:, image: and command:'), {
      error: (iss) =>
        iss.code !== 'invalid_type'
          ? undefined
          : iss.input === undefined || iss.input === null
            ? 'no agents are configured; add at least one agent under agents: (see examples/agentd.yaml)'
            : `must be a list of agents, not ${describe(iss.input)}; add at least one agent under agents:`,
    })
    .min(1, { error: 'is empty; add at least one agent under agents:' }),
};

export const KEYS = {
  top: Object.keys(topShape),
  daemon: Object.keys(daemonShape),
  agent: Object.keys(agentShape),
  credential: Object.keys(credentialShape),
  resources: Object.keys(resourcesShape),
  mount: Object.keys(mountShape),
  schedule: Object.keys(scheduleShape),
  host: Object.keys(hostShape),
  notify: Object.keys(notifyShape),
  http: Object.keys(httpShape),
  token: Object.keys(tokenShape),
  tls: Object.keys(tlsShape),
} as const;

/** Allowed keys of the mapping at `path`, for "unknown key" messages. */
export function allowedKeysAt(path: readonly PropertyKey[]): readonly string[] {
  const [first, , third] = path;
  if (path.length === 0) return KEYS.top;
  if (first === 'daemon' && path[1] === 'resources') return KEYS.resources;
  if (first === 'daemon' && path[1] === 'notify') return KEYS.notify;
  if (first === 'daemon' && path[1] === 'http' && path[2] === 'tokens') return KEYS.token;
  if (first === 'daemon' && path[1] === 'http' && path[2] === 'tls') return KEYS.tls;
  if (first === 'daemon' && path[1] === 'http') return KEYS.http;
  if (first === 'agents' && third === 'notify') return KEYS.notify;
  if (first === 'daemon') return KEYS.daemon;
  if (first === 'hosts' && path.length === 2) return KEYS.host;
  if (first === 'agents' && path.length === 2) return KEYS.agent;
  if (first === 'agents' && third === 'resources') return KEYS.resources;
  if (first === 'agents' && third === 'credentials') return KEYS.credential;
  if (first === 'agents' && third === 'mounts') return KEYS.mount;
  if (first === 'agents' && third === 'schedule') return KEYS.schedule;
  return [];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks across entries. It runs even when other parts are invalid (so all problems appear together), hence
 * it reads the input defensively instead of trusting the parsed type.
 */
function crossCheck(value: unknown, ctx: z.core.$RefinementCtx) {
  if (!isRecord(value) || !Array.isArray(value.agents)) return;
  const daemonResources =
    isRecord(value.daemon) && isRecord(value.daemon.resources) ? value.daemon.resources : {};
  swapCheck(daemonResources, {}, ['daemon', 'resources'], ctx);
  const names = new Map<string, number>();
  value.agents.forEach((agent: unknown, i) => {
    if (!isRecord(agent)) return;
    if (isRecord(agent.resources))
      swapCheck(agent.resources, daemonResources, ['agents', i, 'resources'], ctx);
    if (typeof agent.name === 'string') {
      const first = names.get(agent.name);
      if (first === undefined) names.set(agent.name, i);
      else {
        ctx.addIssue({
          code: 'custom',
          path: ['agents', i, 'name'],
          input: agent.name,
          message: `${describe(agent.name)} is already used by agents[${first}]; agent names must be unique, rename one of them`,
        });
      }
    }
    if (typeof agent.name === 'string') targetCheck(agent, agent.name, i, ctx);
    if (!Array.isArray(agent.credentials)) return;
    const envKeys = isRecord(agent.env) ? agent.env : {};
    const seen = new Map<string, number>();
    agent.credentials.forEach((cred: unknown, j) => {
      if (!isRecord(cred) || typeof cred.name !== 'string') return;
      const path = ['agents', i, 'credentials', j, 'name'];
      const first = seen.get(cred.name);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path,
          input: cred.name,
          message: `${describe(cred.name)} is already defined by agents[${i}].credentials[${first}]; remove the duplicate`,
        });
      } else seen.set(cred.name, j);
      if (Object.hasOwn(envKeys, cred.name)) {
        ctx.addIssue({
          code: 'custom',
          path,
          input: cred.name,
          message: `${describe(cred.name)} is also set under env; a variable comes from env or from a credential, remove one`,
        });
      }
    });
  });
}

/**
 * Where an agent's mounts and caches land: not on each other, not on the clone, the home or the
 * scratch directories. Targets that fail targetProblem were reported by the schema already.
 */
function targetCheck(agent: Record<string, unknown>, name: string, i: number, ctx: z.core.$RefinementCtx) {
  const targets: { path: (string | number)[]; target: string; what: string }[] = [];
  if (Array.isArray(agent.mounts)) {
    agent.mounts.forEach((mount: unknown, j) => {
      if (isRecord(mount) && typeof mount.target === 'string') {
        targets.push({
          path: ['agents', i, 'mounts', j, 'target'],
          target: mount.target,
          what: `mounts[${j}]`,
        });
      }
    });
  }
  if (isRecord(agent.caches)) {
    for (const [cache, target] of Object.entries(agent.caches)) {
      if (typeof target === 'string') {
        targets.push({ path: ['agents', i, 'caches', cache], target, what: `caches.${cache}` });
      }
    }
  }
  if (typeof agent.context === 'string') {
    targets.push({ path: ['agents', i, 'context'], target: CONTEXT_TARGET, what: 'context' });
  }
  // The first target before each that overlaps it, found once for all: one agent of 61,786 mounts
  // compared each with every one before it for 118 s.
  const overlapping = firstOverlaps(targets.map((t) => t.target));
  targets.forEach((entry, k) => {
    if (entry.what === 'context' || targetProblem(entry.target) !== undefined) return;
    const clash = targetClash(entry.target, name);
    if (clash !== undefined) {
      ctx.addIssue({ code: 'custom', path: entry.path, input: entry.target, message: clash });
      return;
    }
    const first = overlapping[k];
    const other = first === undefined ? undefined : targets[first];
    if (other !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: entry.path,
        input: entry.target,
        message: `${describe(entry.target)} overlaps ${other.what} (${describe(other.target)}); each mount and cache needs a place of its own`,
      });
    }
  });
}

/** memory_swap is memory plus swap: it cannot be less than the memory in force beside it. */
function swapCheck(
  own: Record<string, unknown>,
  daemon: Record<string, unknown>,
  path: readonly (string | number)[],
  ctx: z.core.$RefinementCtx,
) {
  const sizeOf = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? parseSize(v) : undefined);
  if (own.memory_swap === undefined) return;
  const swap = sizeOf(own.memory_swap);
  const memory = sizeOf(own.memory ?? daemon.memory ?? RESOURCE_DEFAULTS.memory);
  if (swap === undefined || memory === undefined || swap.bytes >= memory.bytes) return;
  ctx.addIssue({
    code: 'custom',
    path: [...path, 'memory_swap'],
    input: own.memory_swap,
    message: `${swap.text} is less than memory (${memory.text}); memory_swap is memory plus swap: set it to ${memory.text} or more, or remove it for no swap`,
  });
}

export const configSchema = z.strictObject(topShape).superRefine(crossCheck, { when: () => true });

export type RawConfig = z.infer<typeof configSchema>;

/** Per-parse fallback for issues no schema above words itself. */
export function fallbackError(iss: Issue): string | undefined {
  if (iss.code === 'invalid_type') return `must be ${iss.expected}, not ${describe(iss.input)}`;
  return undefined;
}
