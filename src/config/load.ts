import { realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Composer,
  type CST,
  type Document,
  isAlias,
  isMap,
  isNode,
  isScalar,
  isSeq,
  LineCounter,
  type YAMLError,
  YAMLParseError,
} from 'yaml';
import type { z } from 'zod';
import { parseAge, parseDuration } from '../duration.js';
import { AgentdError, errorMessage } from '../errors.js';
import { parseOrigin, parseRepoUrl } from '../repo-url.js';
import { readConfigFile } from './config-file.js';
import { hostAllowed, seesThisMachine, tcpHostExposure, transportOf } from './hosts.js';
import { type HttpListen, parseListen } from './http.js';
import { cacheVolumeKey, forbiddenHostRoot, isInside, overlaps, PathIndex } from './mounts.js';
import { configSearchPath, defaultSocketPath, defaultStateDir } from './paths.js';
import { podmanPathCheck, podmanPaths, programPaths } from './podman-paths.js';
import { hiddenValue, looksLikeSecret, MAX_SHOWN_CHARS, quoted } from './quoted.js';
import {
  capabilityName,
  type MinFree,
  parseMinFree,
  parseSize,
  type RawResources,
  resolveResources,
} from './resources.js';
import {
  allowedKeysAt,
  configSchema,
  describe,
  fallbackError,
  looksLikeTokenName,
  parseSourceSyntax,
  type RawConfig,
  TOKEN_LIKE_SOURCE,
} from './schema.js';
import type {
  AgentConfig,
  CredentialSource,
  HostConfig,
  HttpSettings,
  MountConfig,
  NotifyTarget,
  Settings,
} from './types.js';
import { inlineAliases } from './yaml-aliases.js';
import { MAX_YAML_DEPTH, yamlTokens } from './yaml-depth.js';
import { type DuplicateKey, duplicateKeys, PairIndex } from './yaml-keys.js';
import { oddNumbers } from './yaml-numbers.js';
import { customTags } from './yaml-tags.js';

export const DEFAULTS = {
  maxSessions: 4,
  stopGraceMs: 10_000,
  podmanTimeoutMs: 60_000,
  pullTimeoutMs: 600_000,
  logMaxBytes: 1_048_576,
  historyLimit: 200,
  network: 'bridge',
  recordsMaxAge: '30d',
  recordsMaxBytes: 10 * 1024 ** 3,
  recordsMaxCount: 100_000,
  recordsMinFree: '0',
  hostMaxSessions: 4,
  hostProbeIntervalMs: 10_000,
  hostProbeTimeoutMs: 5_000,
  hostDownGraceMs: 10 * 60_000,
  notifyAttempts: 5,
  httpBodyLimitBytes: 2 * 1024 ** 2,
  notifyBackoffMs: 2000,
} as const;

/**
 * Agents one configuration may hold. The file's text is bounded (4 MiB, 16 MiB with its aliases expanded),
 * not how many agents it makes: `- {<<: *d, name: aN}` is some 25 bytes, and 124,000 of them took
 * `agentd validate` to 900 MB. Measured with a real daemon at 10,000 agents (one-line, merged and of 15
 * lines): 87 to 92 MB idle against 71 MB with one agent (2 KB each, the text not kept: own-strings.ts),
 * an `agents` reply of 3 to 4 MB that took 17 to 23 MB more while it was sent, a reload's peak 233 to
 * 430 MB (the thread's, given back).
 * Counted before the aliases are put in place, the first step whose memory grows with the agents.
 */
export const MAX_AGENTS = 10_000;

/** Longest Unix socket path: sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_BYTES = 107;

/** The shipped example, resolved from this module so the path is right both in src/ and in dist/. */
export const EXAMPLE_CONFIG = fileURLToPath(new URL('../../examples/agentd.yaml', import.meta.url));

export interface ConfigProblem {
  /** Key path like `agents[1].credentials[0].name`; empty for the file as a whole. */
  path: string;
  /** What is wrong, what is expected and how to fix it. */
  message: string;
  line?: number;
  column?: number;
}

/**
 * Problems listed at most, in the file's order; the rest are counted. A 4 MiB file of a repeated key has
 * 250,000: a reload answered 35 MB and logged one line of 78 MB, and the daemon's RSS went from 89 MB to
 * 504 MB.
 */
export const MAX_LISTED_PROBLEMS = 200;

export class ConfigError extends AgentdError {
  readonly file: string;
  /** The first MAX_LISTED_PROBLEMS, then one that counts the others. */
  readonly problems: ConfigProblem[];
  /** The problems found, those not listed included. */
  readonly total: number;
  /**
   * `total` is for an error made again from another thread's (a reload's parse): its first
   * MAX_LISTED_PROBLEMS problems and how many there were.
   */
  constructor(file: string, problems: ConfigProblem[], total: number = problems.length) {
    const listed =
      total <= MAX_LISTED_PROBLEMS
        ? problems
        : [
            ...problems.slice(0, MAX_LISTED_PROBLEMS),
            {
              path: '',
              message: `and ${total - MAX_LISTED_PROBLEMS} more problems, not listed; fix these first (is it the right file?), then validate it again`,
            },
          ];
    super('CONFIG_INVALID', formatProblems(file, listed, total), {
      operation: 'load configuration',
    });
    this.name = 'ConfigError';
    this.file = file;
    this.problems = listed;
    this.total = total;
  }
}

export function formatProblems(
  file: string,
  problems: readonly ConfigProblem[],
  total: number = problems.length,
): string {
  const count = `${total} ${total === 1 ? 'problem' : 'problems'}`;
  return [`${file}: ${count} in the configuration`, ...problems.map((p) => `  ${formatProblem(p)}`)].join(
    '\n',
  );
}

function formatProblem(problem: ConfigProblem): string {
  const where = problem.line === undefined ? undefined : `line ${problem.line}, col ${problem.column ?? 1}`;
  if (problem.path === '') return where === undefined ? problem.message : `${where}: ${problem.message}`;
  return where === undefined
    ? `${problem.path}: ${problem.message}`
    : `${problem.path} (${where}): ${problem.message}`;
}

/** Renders a zod path as `agents[1].env.LOG_LEVEL`; keys that are not identifiers are quoted. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    const text = String(part);
    if (typeof part === 'number') out += `[${part}]`;
    // A key that looks like a credential (a token pasted as an env name) is not shown, as a value is not.
    else if (looksLikeSecret(text)) out += `[${hiddenValue(text.length, 'a key')}]`;
    else if (text.length <= MAX_SHOWN_CHARS && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(text)) {
      out += `${out === '' ? '' : '.'}${text}`;
    } else out += `[${quoted(text)}]`;
  }
  return out;
}

/** A problem before it is placed in the file; `onKey` points at the key itself rather than its value. */
interface Found {
  path: readonly PropertyKey[];
  message: string;
  onKey?: boolean;
}

class Locator {
  private readonly pairs = new PairIndex();

  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  problem(found: Found): ConfigProblem {
    const pos = this.position(found.path, found.onKey === true);
    const problem: ConfigProblem = { path: formatPath(found.path), message: found.message };
    if (pos !== undefined) Object.assign(problem, { line: pos.line, column: pos.col });
    return problem;
  }

  /** Where `path` is in the text; the nearest existing ancestor when the key is missing. */
  private position(path: readonly PropertyKey[], onKey: boolean): { line: number; col: number } | undefined {
    if (onKey && path.length > 0) {
      const parent = this.node(path.slice(0, -1));
      const key = String(path[path.length - 1]);
      const pair = isMap(parent) ? this.pairs.get(parent, key) : undefined;
      if (isNode(pair?.key) && pair.key.range) return this.lines.linePos(pair.key.range[0]);
    }
    for (let n = path.length; n >= 0; n--) {
      const node = this.node(path.slice(0, n));
      if (isNode(node) && node.range) return this.lines.linePos(node.range[0]);
    }
    return undefined;
  }

  node(path: readonly PropertyKey[]): unknown {
    let node: unknown = this.doc.contents;
    for (const part of path) {
      // By the key's text: `3:` under exit_codes is the number 3 in YAML and the string "3" in a path.
      if (isMap(node)) node = this.pairs.get(node, String(part))?.value;
      else if (isSeq(node) && typeof part === 'number') node = node.items[part];
      else return undefined;
    }
    return node;
  }
}

function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const most = key.length > 4 ? 2 : 1;
  const lower = key.toLowerCase();
  // Keys whose lengths differ by more cannot be that near: a key of 1 MB compared with each allowed key
  // cost 5 s of the one thread.
  const near = allowed.find(
    (k) => Math.abs(k.length - lower.length) <= most && editDistance(k, lower) <= most,
  );
  const hint = near === undefined ? '' : `; did you mean "${near}"?`;
  return `unknown key ${quoted(key)}; allowed keys are ${allowed.join(', ')}${hint}`;
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      next[j] = Math.min((row[j] ?? 0) + 1, (next[j - 1] ?? 0) + 1, (row[j - 1] ?? 0) + cost);
    }
    row = next;
  }
  return row[b.length] ?? 0;
}

function issueProblems(issue: z.core.$ZodIssue): Found[] {
  if (issue.code === 'unrecognized_keys') {
    const allowed = allowedKeysAt(issue.path);
    return issue.keys.map((key) => ({
      path: [...issue.path, key],
      onKey: true,
      message: unknownKeyMessage(key, allowed),
    }));
  }
  if (issue.code === 'invalid_key') {
    return [{ path: issue.path, onKey: true, message: issue.issues[0]?.message ?? issue.message }];
  }
  return [{ path: issue.path, message: issue.message }];
}

function yamlProblem(error: YAMLError, lines: LineCounter): ConfigProblem {
  const text = error.message;
  const hint =
    error.code === 'TAB_AS_INDENT'
      ? 'indent with spaces, not tabs'
      : 'fix the YAML syntax here (check indentation, colons and quotes)';
  const problem: ConfigProblem = { path: '', message: `${text}; ${hint}` };
  if (error.pos[0] === -1) return problem; // as prettyErrors: no place in the text
  const pos = lines.linePos(error.pos[0]);
  return { ...problem, line: pos.line, column: pos.col };
}

/**
 * The document of `tokens` (yamlTokens'), as parseDocument composes it: one document, a second one an
 * error. Errors keep their offsets (`pos`); yamlProblem places them.
 */
function composeOne(tokens: readonly CST.Token[], length: number): Document.Parsed {
  const composer = new Composer({ merge: true, uniqueKeys: false });
  let doc: Document.Parsed | undefined;
  for (const next of composer.compose(tokens, true, length)) {
    if (doc === undefined) doc = next;
    else {
      doc.errors.push(
        new YAMLParseError(
          [next.range[0], next.range[1]],
          'MULTIPLE_DOCS',
          'the file holds more than one YAML document (a --- or ... line between them); agentd.yaml is one document',
        ),
      );
      break;
    }
  }
  // compose(…, true) ends with a document, an empty one for an empty text.
  if (doc === undefined) throw new AgentdError('INTERNAL', 'the YAML composer made no document');
  return doc;
}

/**
 * The text's YAML document, or where it nests too deep. The tokens yamlTokens read (some 70 bytes of
 * memory a byte of text: 300 MB for a 4 MiB file of one-line agents, four times the document made from
 * them) are held in this function only, so that nothing holds them once the document is composed.
 * merge: true so that `<<: *defaults` can share settings between agents. Repeated keys are found by
 * duplicateKeys: the library's own check (uniqueKeys) costs a comparison with every key before. The
 * document is composed from the tokens, as parseDocument would from the text.
 */
function composedDocument(
  text: string,
  lines: LineCounter,
): { doc: Document.Parsed } | { tooDeepAt: number } {
  const parsed = yamlTokens(text, lines);
  if ('tooDeepAt' in parsed) return parsed;
  return { doc: composeOne(parsed.tokens, text.length) };
}

/** A key given twice in one mapping, at the repeated key, with its key path and where the first one is. */
function duplicateProblem(dup: DuplicateKey, lines: LineCounter): ConfigProblem {
  const at = lines.linePos(dup.offset);
  const first = lines.linePos(dup.firstOffset);
  return {
    path: formatPath([...dup.path, dup.key]),
    message: `Map keys must be unique; ${quoted(dup.key)} appears twice; remove or merge the repeated key (the first is at line ${first.line})`,
    line: at.line,
    column: at.col,
  };
}

function byPosition(a: ConfigProblem, b: ConfigProblem): number {
  return (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function currentUid(): number {
  return process.getuid?.() ?? 0;
}

/**
 * Parses and validates agentd.yaml text. Pure apart from reading the defaults for env, uid and home.
 * Throws ConfigError listing every problem found, each with its key path and position.
 */
export function parseConfig(
  text: string,
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  uid: number = currentUid(),
  home: string = env.HOME || homedir(),
  collect?: () => void,
): Settings {
  const absFile = resolve(file);
  const lines = new LineCounter();
  const parsed = composedDocument(text, lines);
  if ('tooDeepAt' in parsed) {
    const deep = parsed.tooDeepAt;
    const before = text.slice(0, deep);
    const line = before.split('\n').length;
    throw new ConfigError(absFile, [
      {
        path: '',
        message: `the YAML nests deeper than ${MAX_YAML_DEPTH} levels here (agentd.yaml needs a handful; see examples/agentd.yaml); is it the right file?`,
        line,
        column: deep - before.lastIndexOf('\n'),
      },
    ]);
  }
  const doc = parsed.doc;
  // The tokens are garbage now: the largest part of the memory a large file takes (see LoadOptions.collect).
  collect?.();
  const duplicates = duplicateKeys(doc);
  if (doc.errors.length > 0 || duplicates.length > 0) {
    throw new ConfigError(
      absFile,
      [
        ...doc.errors.map((e) => yamlProblem(e, lines)),
        ...duplicates.map((d) => duplicateProblem(d, lines)),
      ].sort(byPosition),
    );
  }
  const locator = new Locator(doc, lines);
  const fail = (found: Found[]): never => {
    throw new ConfigError(absFile, found.map((f) => locator.problem(f)).sort(byPosition));
  };
  const tagged = customTags(doc);
  if (tagged.length > 0) return fail(tagged);
  const numbers = oddNumbers(doc);
  if (numbers.length > 0) return fail(numbers);
  const agents = agentCount(doc, locator);
  if (agents > MAX_AGENTS) return fail([{ path: ['agents'], message: tooManyAgents(agents) }]);

  // Aliases are put in place and counted here (yaml-aliases.ts), not by toJS.
  const inlined = inlineAliases(doc, undefined, undefined, (offset) => lines.linePos(offset).line);
  if ('message' in inlined) {
    const at = lines.linePos(inlined.offset);
    throw new ConfigError(absFile, [
      { path: formatPath(inlined.path), message: inlined.message, line: at.line, column: at.col },
    ]);
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: -1 });
  } catch (error) {
    return fail([{ path: [], message: `${errorMessage(error)}; fix the YAML anchors and aliases` }]);
  } finally {
    inlined.restore();
  }
  if (data === null || data === undefined) {
    return fail([
      {
        path: [],
        message: 'the file is empty; add at least one agent under agents: (see examples/agentd.yaml)',
      },
    ]);
  }
  if (!isRecord(data)) {
    return fail([
      {
        path: [],
        message: `the top level must be a mapping with an agents: key, not ${describe(data)}; see examples/agentd.yaml`,
      },
    ]);
  }
  const unwritable = unwritableText(data);
  if (unwritable.length > 0) return fail(unwritable);
  const result = configSchema.safeParse(data, { error: fallbackError });
  if (!result.success) return fail(result.error.issues.flatMap(issueProblems));

  const problems: Found[] = [];
  const settings = toSettings(result.data, absFile, { env, uid, home, locator, problems });
  if (problems.length > 0) return fail(problems);
  return settings;
}

/** The items of the top-level `agents:` list as written (an alias of a list: the list's), 0 for no list. */
function agentCount(doc: Document, locator: Locator): number {
  let node = locator.node(['agents']);
  if (isAlias(node)) node = node.resolve(doc);
  return isSeq(node) ? node.items.length : 0;
}

function tooManyAgents(count: number): string {
  // Thousands by hand: toLocaleString loads ICU's locale data (see diff.ts).
  const n = (value: number) => String(value).replace(/\B(?=(\d{3})+$)/g, ',');
  return `${n(count)} agents, more than the ${n(MAX_AGENTS)} one daemon takes (each costs it some 2 to 3 KB of memory for its whole life, and 400 bytes of every agents reply); split them between daemons of their own (each with its own config file, daemon.socket and daemon.state_dir), or remove the agents no one triggers`;
}

/**
 * Text no key or value of agentd.yaml can hold, whatever its key: a NUL (`"\0"`, `"\x00"` in double
 * quotes), which no path, command argument, environment value or image name can carry (measured: validate
 * said valid, then a start failed "cannot create state dir ...: ERR_INVALID_ARG_VALUE", and a session would
 * fail at its credential file or at `podman run`), and a lone surrogate (`"\ud800"` without its pair),
 * which is no character and would reach Podman or the disk as U+FFFD, changed without a word. Found on
 * the values as the aliases made them, each at its key path; a key is told at itself.
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function unwritableText(data: unknown): Found[] {
  const found: Found[] = [];
  const check = (text: string, path: readonly PropertyKey[], onKey: boolean) => {
    const nul = text.indexOf('\0');
    if (nul >= 0) {
      found.push({
        path,
        onKey,
        message: `${onKey ? 'the key ' : ''}holds a NUL character (\\0) at character ${nul + 1}, which no path, command argument, environment value or name can carry; remove it`,
      });
    } else if (LONE_SURROGATE.test(text)) {
      found.push({
        path,
        onKey,
        message: `${onKey ? 'the key ' : ''}holds a lone surrogate (an escape like "\\ud800" without its pair), which is not a character and would be passed on as U+FFFD; write the character itself, or both escapes of its pair`,
      });
    }
  };
  const walk = (value: unknown, path: readonly PropertyKey[]): void => {
    if (typeof value === 'string') check(value, path, false);
    else if (Array.isArray(value)) {
      value.forEach((item, i) => {
        walk(item, [...path, i]);
      });
    } else if (isRecord(value) && !ArrayBuffer.isView(value)) {
      for (const [key, item] of Object.entries(value)) {
        check(key, [...path, key], true);
        walk(item, [...path, key]);
      }
    }
  };
  walk(data, []);
  return found;
}

interface ConvertContext {
  env: NodeJS.ProcessEnv;
  uid: number;
  home: string;
  locator: Locator;
  problems: Found[];
}

function toSettings(raw: RawConfig, file: string, ctx: ConvertContext): Settings {
  const dir = dirname(file);
  const daemon = raw.daemon ?? {};
  const socket =
    daemon.socket !== undefined ? resolve(dir, daemon.socket) : defaultSocketPath(ctx.env, ctx.uid);
  if (Buffer.byteLength(socket) > MAX_SOCKET_BYTES) {
    ctx.problems.push({
      path: ['daemon', 'socket'],
      message: `the socket path ${describe(socket)} is longer than ${MAX_SOCKET_BYTES} bytes; set daemon.socket to a shorter path`,
    });
  }
  const stateDir =
    daemon.state_dir !== undefined
      ? resolve(dir, daemon.state_dir)
      : defaultStateDir(ctx.env, ctx.uid, ctx.home);
  // Each session's work files (request, inputs, output) are bind-mounted from <state_dir>/work with
  // podman's --volume, which reads : and , as separators: every session would fail to start.
  const separator = /[:,]/.exec(stateDir)?.[0];
  if (separator !== undefined) {
    ctx.problems.push({
      path: ['daemon', 'state_dir'],
      message: `the state dir ${describe(stateDir)} contains "${separator}", which podman would read as a separator when it mounts each session's work files from it; ${daemon.state_dir === undefined ? 'set daemon.state_dir to' : 'use'} a path without : and ,`,
    });
  }
  notADirectoryCheck(stateDir, ['daemon', 'state_dir'], 'the state dir', ctx);
  const recordsDir =
    daemon.records_dir !== undefined ? resolve(dir, daemon.records_dir) : join(stateDir, 'records');
  if (daemon.records_dir !== undefined)
    notADirectoryCheck(recordsDir, ['daemon', 'records_dir'], 'the records dir', ctx);
  // What an agent may never be handed: the daemon's own files (other sessions' requests and records),
  // and the directories of its sockets (an agent that writes there could put its own socket in place).
  const httpListen = daemon.http?.listen === undefined ? undefined : parseListen(daemon.http.listen);
  const own = [
    stateDir,
    recordsDir,
    dirname(socket),
    ...(httpListen !== undefined && 'kind' in httpListen && httpListen.kind === 'unix'
      ? [dirname(httpListen.path)]
      : []),
  ].map(resolvedPath);
  const hosts = toHosts(raw.hosts ?? [], ctx);
  const agents = raw.agents.map((agent, i) =>
    toAgent(agent, i, dir, daemon.resources ?? {}, own, ctx, daemon.user_namespace),
  );
  placementCheck(raw, agents, hosts, ctx);
  tcpReachCheck(hosts, agents, ctx);
  cacheNameCheck(agents, ctx);
  const optionalMs = (text: string | undefined, fallback: number) =>
    text !== undefined ? durationMs(text) : fallback;
  const settings: Settings = {
    file,
    daemon: {
      socket,
      stateDir,
      // With hosts, the daemon-wide limit is theirs together unless it is set.
      maxSessions:
        daemon.max_sessions ??
        (hosts.length > 0 ? hosts.reduce((sum, h) => sum + h.maxSessions, 0) : DEFAULTS.maxSessions),
      stopGraceMs: daemon.stop_grace !== undefined ? durationMs(daemon.stop_grace) : DEFAULTS.stopGraceMs,
      podmanTimeoutMs:
        daemon.podman_timeout !== undefined ? durationMs(daemon.podman_timeout) : DEFAULTS.podmanTimeoutMs,
      pullTimeoutMs:
        daemon.pull_timeout !== undefined ? durationMs(daemon.pull_timeout) : DEFAULTS.pullTimeoutMs,
      logMaxBytes: daemon.log_max_bytes ?? DEFAULTS.logMaxBytes,
      historyLimit: daemon.history ?? DEFAULTS.historyLimit,
      recordsDir,
      recordsMaxAgeMs: parseAge(daemon.records_max_age ?? DEFAULTS.recordsMaxAge) ?? 0,
      recordsMaxBytes:
        daemon.records_max_size !== undefined
          ? (parseSize(daemon.records_max_size)?.bytes ?? DEFAULTS.recordsMaxBytes)
          : DEFAULTS.recordsMaxBytes,
      recordsMaxCount: daemon.records_max_count ?? DEFAULTS.recordsMaxCount,
      recordsMinFree:
        parseMinFree(daemon.records_min_free ?? DEFAULTS.recordsMinFree) ??
        (parseMinFree(DEFAULTS.recordsMinFree) as MinFree),
      hostProbeIntervalMs: optionalMs(daemon.host_probe_interval, DEFAULTS.hostProbeIntervalMs),
      hostProbeTimeoutMs: optionalMs(daemon.host_probe_timeout, DEFAULTS.hostProbeTimeoutMs),
      hostDownGraceMs: optionalMs(daemon.host_down_grace, DEFAULTS.hostDownGraceMs),
      notify: toNotify(daemon.notify, dir),
      ...(daemon.http === undefined ? {} : { http: toHttp(daemon.http, dir, ctx) }),
    },
    agents,
    hosts,
  };
  writableSourceCheck(settings, ctx);
  readableSecretCheck(settings, ctx);
  const guarded = [...podmanPaths(ctx.env, ctx.uid, ctx.home), ...programPaths(ctx.env)];
  ctx.problems.push(...podmanPathCheck(agents, guarded, resolvedPath));
  return settings;
}

/** `hosts:` as settings; names and urls must be unique, ssh wants its key, tcp:// an explicit `insecure`. */
function toHosts(raw: NonNullable<RawConfig['hosts']>, ctx: ConvertContext): HostConfig[] {
  const names = new Map<string, number>();
  const urls = new Map<string, number>();
  return raw.map((entry, i) => {
    const path = ['hosts', i] as const;
    const host: HostConfig = {
      name: entry.name,
      maxSessions: entry.max_sessions ?? DEFAULTS.hostMaxSessions,
      labels: toEnv(entry.labels ?? {}, [...path, 'labels'], ctx.locator),
    };
    if (entry.url !== undefined) host.url = entry.url;
    if (entry.identity !== undefined) host.identity = entry.identity;
    const first = names.get(entry.name);
    if (first === undefined) names.set(entry.name, i);
    else {
      ctx.problems.push({
        path: [...path, 'name'],
        message: `${describe(entry.name)} is already used by hosts[${first}]; host names must be unique, rename one of them`,
      });
    }
    // Two entries for one engine would reconcile each other's sessions away.
    const where = entry.url ?? 'the local podman';
    const same = urls.get(where);
    if (same === undefined) urls.set(where, i);
    else {
      ctx.problems.push({
        path: entry.url === undefined ? [...path] : [...path, 'url'],
        message:
          entry.url === undefined
            ? `hosts[${same}] has no url either: only one host may be the local podman; give this one a url`
            : `hosts[${same}] has the same url; each host is one Podman engine, remove one of them`,
      });
    }
    const transport = transportOf(host);
    if (transport === 'tcp' && entry.insecure !== true) {
      ctx.problems.push({
        path: [...path, 'url'],
        message:
          'tcp:// has neither encryption nor authentication: credentials would cross the network in clear and anyone who reaches the port controls the host; use ssh://, or set insecure: true (for a loopback test setup whose agents have network: bridge or none)',
      });
    }
    if (transport !== 'tcp' && entry.insecure !== undefined) {
      ctx.problems.push({
        path: [...path, 'insecure'],
        onKey: true,
        message: 'only applies to tcp:// urls; remove it',
      });
    }
    if (entry.identity !== undefined && transport === 'ssh') {
      try {
        if (!statSync(entry.identity).isFile()) throw Object.assign(new Error(), { code: 'EISDIR' });
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        ctx.problems.push({
          path: [...path, 'identity'],
          message:
            code === 'ENOENT' || code === 'ENOTDIR'
              ? `${describe(entry.identity)} does not exist; create the key (ssh-keygen -t ed25519 -f ${entry.identity}) or fix the path`
              : `${describe(entry.identity)} is not a readable file (${code ?? 'error'}); point at the private key`,
        });
      }
    }
    if (entry.identity !== undefined && transport !== 'ssh') {
      ctx.problems.push({
        path: [...path, 'identity'],
        onKey: true,
        message: 'is the private key for ssh:// urls only; remove it',
      });
    }
    return host;
  });
}

/**
 * No session may reach a tcp:// host's Podman API (no authentication, root on that machine):
 * `insecure: true` accepts the missing encryption, not agents that can take the host over. A reload
 * reads the file through here too.
 */
function tcpReachCheck(
  hosts: readonly HostConfig[],
  agents: readonly AgentConfig[],
  ctx: ConvertContext,
): void {
  hosts.forEach((host, i) => {
    const problem = tcpHostExposure(host, agents);
    if (problem !== undefined) ctx.problems.push({ path: ['hosts', i, 'url'], message: problem });
  });
}

/**
 * No two agents' caches share a volume: its name joins the agent's and the cache's with `-`, which both
 * may hold, and one agent's sessions would read and write what the other's leave (its tools' tokens).
 */
function cacheNameCheck(agents: readonly AgentConfig[], ctx: ConvertContext): void {
  const seen = new Map<string, { agent: string; cache: string }>();
  agents.forEach((agent, i) => {
    for (const cache of agent.caches) {
      const key = cacheVolumeKey(agent.name, cache.name);
      const first = seen.get(key);
      if (first === undefined) {
        seen.set(key, { agent: agent.name, cache: cache.name });
      } else if (first.agent !== agent.name) {
        ctx.problems.push({
          path: ['agents', i, 'caches', cache.name],
          onKey: true,
          message: `makes the same volume name (…-cache-${key}) as agent ${first.agent}'s cache ${first.cache}, so the two agents would share it; rename one of the caches`,
        });
      }
    }
  });
}

/**
 * A path with every link resolved, as far as it exists: the deepest existing ancestor's real path with
 * the rest appended, so that a file not created yet (or a state dir) reached through a link is compared
 * where it will be. The ancestor is found by halving: an ancestor of one that resolves resolves too (the
 * path is made plain first, as realpath does: `..` would break that). Trying each ancestor from the
 * deepest costs each one's length: measured, a credential's `file:` path of 40,000 parts (a 120 KB
 * file) held `validate`, `start` and a reload's thread for 100 s, one of a few MB for days.
 */
function resolvedPath(path: string): string {
  const real = (at: string): string | undefined => {
    try {
      return realpathSync(at);
    } catch {
      return undefined;
    }
  };
  if (!isAbsolute(path)) return resolvedRelative(path);
  const plain = resolve(path);
  const whole = real(plain);
  if (whole !== undefined) return whole;
  // Where each ancestor ends: the root, then before each later separator.
  const ends = [1];
  for (let at = plain.indexOf('/', 1); at !== -1; at = plain.indexOf('/', at + 1)) ends.push(at);
  // ends[low] resolves (the root does), ends.length (the whole path) does not.
  let low = 0;
  let high = ends.length;
  let found = real('/');
  if (found === undefined) return path;
  while (high - low > 1) {
    const middle = (low + high) >>> 1;
    const resolved = real(plain.slice(0, ends[middle]));
    if (resolved === undefined) high = middle;
    else {
      low = middle;
      found = resolved;
    }
  }
  return join(found, plain.slice(ends[low]));
}

/** resolvedPath of a relative path, from its deepest ancestor that resolves (none is: every path is absolute). */
function resolvedRelative(path: string): string {
  const rest: string[] = [];
  let at = path;
  for (;;) {
    try {
      return join(realpathSync(at), ...rest.reverse());
    } catch {
      const parent = dirname(at);
      if (parent === at) return path;
      rest.push(basename(at));
      at = parent;
    }
  }
}

/**
 * Nothing agentd reads or hands on from the host lies inside a read-write mount's source, whoever's: the
 * agent that writes there can replace a directory on the way with a link, and Podman follows it on the
 * host for the next container (the host's /proc, another agent's directory); a file source there (a
 * credential, a token, the configuration itself) is the agent's to rewrite, or to make a link through
 * which the daemon, reading as itself, hands it any file. Real paths are compared, so a link in the
 * configuration does not hide it. A mount or context that is the read-write directory itself is shared,
 * not redirected; a file that is one is the agent's.
 */
function writableSourceCheck(settings: Settings, ctx: ConvertContext): void {
  const writable = settings.agents.flatMap((agent, i) =>
    agent.mounts.flatMap((m, j) =>
      m.readOnly
        ? []
        : [
            {
              agent: agent.name,
              at: `agents[${i}].mounts[${j}]`,
              path: ['agents', i, 'mounts', j, 'source'],
              source: m.source,
              real: resolvedPath(m.source),
            },
          ],
    ),
  );
  if (writable.length === 0) return;
  type Place = { path: PropertyKey[]; source: string; file: boolean };
  const places: Place[] = [{ path: [], source: settings.file, file: true }];
  settings.agents.forEach((agent, i) => {
    agent.mounts.forEach((m, j) => {
      places.push({ path: ['agents', i, 'mounts', j, 'source'], source: m.source, file: false });
    });
    if (agent.context !== undefined)
      places.push({ path: ['agents', i, 'context'], source: agent.context, file: false });
  });
  for (const { path, source } of secretFiles(settings)) places.push({ path, source, file: true });
  const reach = new MountReach(writable);
  for (const { path, source, file } of places) {
    const resolved = resolvedPath(source);
    const first = reach.first(source, resolved, file);
    const under = first === undefined ? undefined : writable[first];
    if (under === undefined) continue;
    if (path.length === 0) {
      // The configuration file has no line of its own: the mount that reaches it is told.
      ctx.problems.push({
        path: under.path,
        message: `${describe(under.source)} holds the configuration file ${describe(source)}, and agent ${under.agent} may write to it (read_only: false): its sessions could rewrite the configuration; move the configuration, or make this mount read-only`,
      });
      continue;
    }
    ctx.problems.push({
      path,
      message: `${describe(source)} ${source === under.source || resolved === under.real ? 'is' : 'lies inside'} ${describe(under.source)}, which agent ${under.agent} may write to (${under.at} has read_only: false): its sessions could ${file ? 'rewrite it, or put a link in the way that agentd would read through' : 'put a link in the way to any host path, and the next container would get that'}; use a path outside it, or make that mount read-only`,
    });
  }
}

/**
 * Which mounts (or contexts) reach a host path: the path lies inside one's source (as written or with
 * links resolved), or, for a file, is it. Asked of an index of their paths (mounts.ts's PathIndex), so
 * that a question costs the path's length: comparing each place with each mount took 55 s for 30,664
 * agents of one read-write mount each, and 15 s for 35,000 credential files and 17,700 agents of one
 * read-only mount each.
 */
class MountReach {
  private readonly byReal = new PathIndex();
  private readonly bySource = new PathIndex();

  constructor(mounts: readonly { source: string; real: string }[]) {
    mounts.forEach((mount, i) => {
      this.byReal.add(mount.real, i);
      this.bySource.add(mount.source, i);
    });
  }

  /** The index of the first mount that reaches the path. */
  first(source: string, resolved: string, file: boolean): number | undefined {
    const inReal = this.byReal.firstHolding(resolved, file);
    const inSource = this.bySource.firstHolding(source, file);
    return inReal === undefined ? inSource : inSource === undefined ? inReal : Math.min(inReal, inSource);
  }

  /** The indices of every mount that reaches the path, in their order. */
  all(source: string, resolved: string, file: boolean): number[] {
    const found = new Set([
      ...this.byReal.allHolding(resolved, file),
      ...this.bySource.allHolding(source, file),
    ]);
    return [...found].sort((a, b) => a - b);
  }
}

/**
 * Every file agentd reads from the host for itself: credential and repo token files, webhook secrets,
 * HTTP token files, the TLS certificate and key, hosts' ssh identities. `secret` is false for the TLS
 * certificate, which is public (an agent may read it; it must not rewrite it).
 */
function secretFiles(settings: Settings): { path: PropertyKey[]; source: string; secret: boolean }[] {
  const files: { path: PropertyKey[]; source: string; secret: boolean }[] = [];
  const fileSource = (path: PropertyKey[], source: CredentialSource | undefined) => {
    if (source?.kind === 'file') files.push({ path, source: source.path, secret: true });
  };
  settings.agents.forEach((agent, i) => {
    agent.credentials.forEach((c, k) => {
      fileSource(['agents', i, 'credentials', k, 'source'], c.source);
    });
    fileSource(['agents', i, 'repo_token'], agent.repoToken);
    agent.notify.forEach((n, k) => {
      fileSource(['agents', i, 'notify', k, 'secret'], n.secret);
    });
  });
  settings.daemon.notify.forEach((n, k) => {
    fileSource(['daemon', 'notify', k, 'secret'], n.secret);
  });
  const http = settings.daemon.http;
  http?.tokens.forEach((t, k) => {
    fileSource(['daemon', 'http', 'tokens', k, 'source'], t.source);
  });
  settings.hosts.forEach((h, k) => {
    if (h.identity !== undefined)
      files.push({ path: ['hosts', k, 'identity'], source: h.identity, secret: true });
  });
  if (http?.tls !== undefined) {
    files.push({ path: ['daemon', 'http', 'tls', 'cert'], source: http.tls.cert, secret: false });
    files.push({ path: ['daemon', 'http', 'tls', 'key'], source: http.tls.key, secret: true });
  }
  return files;
}

/**
 * No file agentd reads a value from lies inside a read-only mount's or a context's source: the agent
 * reads it there as any file its user may read (a 0644 token file is), so another agent's credential,
 * its own repo token (meant for the clone only), the daemon's tokens or a host's ssh identity (root on
 * that host) would be its. A file that is one of the mounting agent's own credentials is allowed (its
 * sessions are given that value), whoever else uses it too. Read-write mounts are refused wider by
 * writableSourceCheck. Real paths are compared, so a link does not hide a file.
 */
function readableSecretCheck(settings: Settings, ctx: ConvertContext): void {
  const own = settings.agents.map(
    (agent) =>
      new Set(
        agent.credentials.flatMap((c) => (c.source.kind === 'file' ? [resolvedPath(c.source.path)] : [])),
      ),
  );
  const shared = settings.agents.flatMap((agent, i) => [
    ...agent.mounts.flatMap((m, j) =>
      m.readOnly
        ? [{ agent: i, at: `agents[${i}].mounts[${j}]`, source: m.source, real: resolvedPath(m.source) }]
        : [],
    ),
    ...(agent.context === undefined
      ? []
      : [{ agent: i, at: `agents[${i}].context`, source: agent.context, real: resolvedPath(agent.context) }]),
  ]);
  if (shared.length === 0) return;
  const reach = new MountReach(shared);
  for (const { path, source, secret } of secretFiles(settings)) {
    if (!secret) continue;
    const resolved = resolvedPath(source);
    for (const at of reach.all(source, resolved, true)) {
      const s = shared[at];
      if (s === undefined || own[s.agent]?.has(resolved)) continue;
      const name = settings.agents[s.agent]?.name ?? '?';
      ctx.problems.push({
        path,
        message: `${describe(source)} ${source === s.source || resolved === s.real ? 'is' : 'lies inside'} ${describe(s.source)}, which ${s.at} shows to agent ${name}: its sessions could read the value; keep files agentd reads values from outside what agents mount, or mount a narrower directory`,
      });
    }
  }
}

/** Every agent may run somewhere: its `hosts:` exist and some host has its `host_labels:`. */
function placementCheck(
  raw: RawConfig,
  agents: readonly AgentConfig[],
  hosts: readonly HostConfig[],
  ctx: ConvertContext,
): void {
  raw.agents.forEach((entry, i) => {
    const agent = agents[i];
    if (agent === undefined) return;
    const restricted = entry.hosts !== undefined && entry.hosts !== null;
    const labelled = Object.keys(agent.hostLabels).length > 0;
    if (hosts.length === 0) {
      for (const key of ['hosts', 'host_labels'] as const) {
        if ((key === 'hosts' ? restricted : labelled) === false) continue;
        ctx.problems.push({
          path: ['agents', i, key],
          onKey: true,
          message:
            'no hosts: are configured, so sessions run on the local Podman; add a hosts: list or remove this key',
        });
      }
      return;
    }
    (agent.hosts ?? []).forEach((name, j) => {
      if (!hosts.some((h) => h.name === name)) {
        ctx.problems.push({
          path: ['agents', i, 'hosts', j],
          message: `${describe(name)} is not a configured host; known hosts: ${hosts.map((h) => h.name).join(', ')}`,
        });
      }
    });
    if (agent.hosts?.length === 0) {
      ctx.problems.push({
        path: ['agents', i, 'hosts'],
        message:
          'is empty, so the agent could run nowhere; name at least one host, or remove the key for any host',
      });
      return;
    }
    if (
      !hosts.some((h) => hostAllowed(agent, h)) &&
      (agent.hosts ?? []).every((n) => hosts.some((h) => h.name === n))
    ) {
      ctx.problems.push({
        path: ['agents', i, labelled ? 'host_labels' : 'hosts'],
        message: `no configured host ${agent.hosts === undefined ? '' : `among ${agent.hosts.join(', ')} `}has the labels ${JSON.stringify(agent.hostLabels)}, so the agent could run nowhere; fix the labels or the hosts`,
      });
    }
    // A bounded cache is a filesystem in a file on this machine: a host that does not see its files
    // (ssh://, tcp://) cannot mount it.
    const cache = agent.resources.cache;
    if (cache !== undefined && agent.caches.length > 0) {
      const far = hosts.filter((h) => hostAllowed(agent, h) && !seesThisMachine(h));
      if (far.length > 0) {
        ctx.problems.push({
          path: ['agents', i, 'caches'],
          onKey: true,
          message: `resources.cache (${cache.text}) keeps each cache in a file on this machine, which ${far.map((h) => `${h.name} (${transportOf(h)}://)`).join(', ')} cannot see; pin the agent with hosts: to hosts without a url or with a unix:// one, or remove resources.cache for caches without a size bound`,
        });
      }
    }
  });
}

function toAgent(
  raw: RawConfig['agents'][number],
  index: number,
  dir: string,
  daemonResources: RawResources,
  own: readonly string[],
  ctx: ConvertContext,
  /** `daemon.user_namespace`: the agents' default. */
  daemonUserNamespace?: AgentConfig['userNamespace'],
): AgentConfig {
  const path = ['agents', index] as const;
  const mounts: MountConfig[] = (raw.mounts ?? []).map((m, j) => {
    hostPathCheck(m.source, [...path, 'mounts', j, 'source'], 'any', own, ctx);
    return { source: m.source, target: m.target, readOnly: m.read_only ?? true };
  });
  if (raw.context !== undefined) hostPathCheck(raw.context, [...path, 'context'], 'dir', own, ctx);
  const agent: AgentConfig = {
    name: raw.name,
    image: raw.image,
    command: [...raw.command],
    network: raw.network ?? DEFAULTS.network,
    userNamespace: raw.user_namespace ?? daemonUserNamespace ?? 'host',
    env: toEnv(raw.env ?? {}, [...path, 'env'], ctx.locator),
    credentials: (raw.credentials ?? []).map((c) => ({ name: c.name, source: toSource(c.source, dir) })),
    repoTokenOrigins: [],
    repoTokenRequired: raw.repo_token_required ?? false,
    allowInsecureHttp: raw.allow_insecure_http ?? false,
    resources: resolveResources(raw.resources ?? {}, daemonResources),
    capAdd: [...new Set((raw.cap_add ?? []).map((c) => capabilityName(c) ?? c))],
    mounts,
    caches: Object.entries(raw.caches ?? {}).map(([name, target]) => ({ name, target })),
    notify: toNotify(raw.notify, dir),
    exitCodes: Object.fromEntries(
      Object.entries(raw.exit_codes ?? {}).map(([code, kind]) => [Number(code), kind]),
    ),
    hostLabels: toEnv(raw.host_labels ?? {}, [...path, 'host_labels'], ctx.locator),
  };
  if (agent.userNamespace === 'auto') userNamespaceCheck(raw, path, ctx, raw.user_namespace === undefined);
  if (raw.hosts !== undefined && raw.hosts !== null) agent.hosts = [...new Set(raw.hosts)];
  if (raw.context !== undefined) agent.context = raw.context;
  if (raw.repo !== undefined) {
    const check = parseRepoUrl(raw.repo);
    if (check.ok) agent.repo = check.repo.url;
  }
  if (raw.timeout !== undefined) agent.timeoutMs = durationMs(raw.timeout);
  if (raw.max_concurrent !== undefined) agent.maxConcurrent = raw.max_concurrent;
  if (raw.schedule_work_unit !== undefined) {
    if (raw.schedule === undefined) {
      ctx.problems.push({
        path: [...path, 'schedule_work_unit'],
        onKey: true,
        message:
          'is the work unit of scheduled sessions, and this agent has no schedule:; add schedule: or remove it',
      });
    } else if (raw.schedule.work_unit !== undefined) {
      ctx.problems.push({
        path: [...path, 'schedule_work_unit'],
        onKey: true,
        message: 'is given twice, here and as schedule.work_unit; keep one of them',
      });
    }
  }
  if (raw.schedule !== undefined) {
    const { cron, timezone, overlap, catch_up } = raw.schedule;
    const work_unit = raw.schedule.work_unit ?? raw.schedule_work_unit;
    agent.schedule = {
      cron,
      overlap: overlap ?? 'skip',
      catchUp: catch_up ?? 'none',
      ...(timezone === undefined ? {} : { timezone }),
      ...(work_unit === undefined ? {} : { workUnit: work_unit }),
    };
    if (raw.repo === undefined) {
      ctx.problems.push({
        path: [...path, 'schedule'],
        onKey: true,
        message:
          "a scheduled session clones the agent's repo, and this agent has none; set repo: or remove schedule:",
      });
    }
  }
  if (raw.repo_token !== undefined) agent.repoToken = toSource(raw.repo_token, dir);
  agent.repoTokenOrigins = tokenOrigins(raw, path, agent, ctx);
  return agent;
}

/**
 * Where the agent's repo_token may go: the origin of its own repo and the listed origins, each over
 * https, or http when allow_insecure_http is set. Settings that cannot work are problems.
 */
function tokenOrigins(
  raw: RawConfig['agents'][number],
  path: readonly PropertyKey[],
  agent: AgentConfig,
  ctx: ConvertContext,
): string[] {
  // A Set, not origins.includes: measured, 50,000 listed origins (1.3 MB) held `validate` or a reload
  // for 70 s, each origin compared with every one before it.
  const origins = new Set<string>();
  const hasToken = raw.repo_token !== undefined;
  const insecure = (origin: string, where: readonly PropertyKey[]) => {
    if (origin.startsWith('http://') && !agent.allowInsecureHttp && hasToken) {
      ctx.problems.push({
        path: where,
        message: `${describe(origin)} would receive repo_token over plain http://; use https://, or set allow_insecure_http: true (meant for a loopback test server)`,
      });
    }
  };
  if (agent.repo !== undefined) {
    const check = parseRepoUrl(agent.repo);
    if (check.ok && check.repo.scheme !== 'git') {
      insecure(check.repo.origin, [...path, 'repo']);
      origins.add(check.repo.origin);
    }
  }
  (raw.repo_token_hosts ?? []).forEach((entry, i) => {
    const check = parseOrigin(entry);
    if (!check.ok) return;
    insecure(check.origin, [...path, 'repo_token_hosts', i]);
    origins.add(check.origin);
  });
  if (!hasToken) {
    for (const key of ['repo_token_hosts', 'repo_token_required'] as const) {
      if (raw[key] !== undefined && raw[key] !== null) {
        ctx.problems.push({
          path: [...path, key],
          onKey: true,
          message: `has no effect without repo_token; set repo_token or remove ${key}`,
        });
      }
    }
  } else if (origins.size === 0) {
    ctx.problems.push({
      path: [...path, 'repo_token'],
      message:
        "would never be sent: it goes only to the https:// origin of the agent's repo and to repo_token_hosts, " +
        'and this agent has neither; set repo to an https:// URL or list origins under repo_token_hosts',
    });
  }
  return [...origins];
}

/**
 * A directory of the daemon's that exists as something else (a file, a FIFO), or lies under a file: the
 * start would fail on it, so validate and a reload say so now. One that does not exist yet is made at
 * the start, and one that cannot be looked at (permissions) is the start's to report.
 */
function notADirectoryCheck(
  path: string,
  at: readonly PropertyKey[],
  what: string,
  ctx: ConvertContext,
): void {
  let problem: string | undefined;
  try {
    if (!statSync(path).isDirectory()) problem = 'exists and is not a directory';
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOTDIR') problem = 'lies under a file, not a directory';
  }
  if (problem === undefined) return;
  ctx.problems.push({
    path: at,
    message: `${what} ${describe(path)} ${problem}; point it at a directory, or at a path agentd may create`,
  });
}

/**
 * A mount source or context must exist when the configuration is read (a typo is caught here, not at
 * the first trigger), and must not be, contain or lie inside agentd's own directories.
 */
/**
 * What `user_namespace: auto` cannot give: each session's uids are another range of host uids, so what
 * a session writes in a place that outlives it (a cache volume, a read-write mount) belongs to uids the
 * next session does not have (its root setup step cannot even hand it to the agent's user); and runc
 * cannot mount /sys in a user namespace that shares the host's network.
 */
function userNamespaceCheck(
  raw: RawConfig['agents'][number],
  path: readonly (string | number)[],
  ctx: ConvertContext,
  /** Set by daemon.user_namespace, not by the agent: the fix is then the agent's own `host`. */
  inherited: boolean,
): void {
  const off = inherited
    ? 'or give this agent user_namespace: host (daemon.user_namespace is auto)'
    : 'or remove user_namespace: auto';
  const auto = inherited ? 'user_namespace: auto (from daemon.user_namespace)' : 'user_namespace: auto';
  if (Object.keys(raw.caches ?? {}).length > 0) {
    ctx.problems.push({
      path: [...path, 'caches'],
      onKey: true,
      message: `cannot be used with ${auto}: each session runs as another range of host uids, and a cache keeps the files of the session that wrote them, which the next session's setup step could not hand to its user; remove caches:, ${off}`,
    });
  }
  (raw.mounts ?? []).forEach((m, j) => {
    if (m.read_only !== false) return;
    ctx.problems.push({
      path: [...path, 'mounts', j, 'read_only'],
      message: `false cannot be used with ${auto}: each session runs as another range of host uids, so the agent could not write a host directory made writable for one uid, and what it wrote would belong to a uid later sessions do not have; make the mount read-only, ${off}`,
    });
  });
  if (raw.network === 'host') {
    ctx.problems.push({
      path: [...path, 'network'],
      message: `host cannot be used with ${auto}: the runtime cannot mount /sys in a user namespace on the host's network (sessions would fail to start); use bridge or none, ${off}`,
    });
  }
}

function hostPathCheck(
  path: string,
  at: readonly PropertyKey[],
  want: 'dir' | 'any',
  own: readonly string[],
  ctx: ConvertContext,
): void {
  let kind: 'dir' | 'file' | 'other';
  let real: string;
  try {
    const stat = statSync(path);
    kind = stat.isDirectory() ? 'dir' : stat.isFile() ? 'file' : 'other';
    real = realpathSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    ctx.problems.push({
      path: at,
      message:
        code === 'ENOENT' || code === 'ENOTDIR'
          ? `${describe(path)} does not exist on this host; create it or fix the path`
          : `${describe(path)} cannot be read (${code ?? 'error'}); check its permissions`,
    });
    return;
  }
  if (want === 'dir' && kind !== 'dir') {
    ctx.problems.push({ path: at, message: `${describe(path)} is not a directory; point at a directory` });
    return;
  }
  if (kind === 'other') {
    ctx.problems.push({
      path: at,
      message: `${describe(path)} is neither a directory nor a regular file; mount a directory or a file`,
    });
    return;
  }
  // The path as written was checked by the schema; a link can lead where it may not.
  const forbidden = real === path ? undefined : forbiddenHostRoot(real);
  if (forbidden !== undefined) {
    ctx.problems.push({
      path: at,
      message: `${describe(path)} is a link to ${describe(real)}, under ${forbidden}, which is never handed to an agent; mount another directory`,
    });
    return;
  }
  const clash = own.find((dir) => overlaps(real, dir) || overlaps(path, dir));
  if (clash !== undefined) {
    const how =
      real === clash || path === clash
        ? 'is'
        : isInside(clash, real) || isInside(clash, path)
          ? 'contains'
          : 'lies inside';
    ctx.problems.push({
      path: at,
      message: `${describe(path)} ${how} agentd's own ${clash}, which holds other sessions' requests and records; mount another path`,
    });
  }
}

/** Numbers and booleans keep the text as written (`1.10` stays "1.10", not "1.1"). */
function toEnv(
  raw: Record<string, string | number | boolean>,
  path: readonly PropertyKey[],
  locator: Locator,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value === 'string') env[key] = value;
    else {
      const node = locator.node([...path, key]);
      env[key] = isScalar(node) && typeof node.source === 'string' ? node.source : String(value);
    }
  }
  return env;
}

function toHttp(
  raw: NonNullable<NonNullable<RawConfig['daemon']>['http']>,
  dir: string,
  ctx: ConvertContext,
): HttpSettings {
  const names = new Map<string, number>();
  raw.tokens.forEach((token, i) => {
    const first = names.get(token.name);
    if (first === undefined) names.set(token.name, i);
    else {
      ctx.problems.push({
        path: ['daemon', 'http', 'tokens', i, 'name'],
        message: `${describe(token.name)} is already used by daemon.http.tokens[${first}]; token names must be unique (the log tells requests apart by them)`,
      });
    }
  });
  return {
    listen: parseListen(raw.listen) as HttpListen,
    tokens: raw.tokens.map((t) => ({
      name: t.name,
      source: toSource(t.source, dir),
      scopes: [...new Set(t.scopes)],
    })),
    ...(raw.tls === undefined
      ? {}
      : { tls: { cert: resolve(dir, raw.tls.cert), key: resolve(dir, raw.tls.key) } }),
    bodyLimitBytes:
      raw.body_limit === undefined
        ? DEFAULTS.httpBodyLimitBytes
        : (parseSize(raw.body_limit)?.bytes ?? DEFAULTS.httpBodyLimitBytes),
  };
}

function toNotify(raw: RawConfig['agents'][number]['notify'], dir: string): NotifyTarget[] {
  return (raw ?? []).map((n) => ({
    url: new URL(n.url).href,
    secret: toSource(n.secret, dir),
    attempts: n.attempts ?? DEFAULTS.notifyAttempts,
    backoffMs: n.backoff !== undefined ? durationMs(n.backoff) : DEFAULTS.notifyBackoffMs,
    ...(n.outcomes === undefined ? {} : { outcomes: [...new Set(n.outcomes)] }),
  }));
}

function toSource(raw: string, dir: string): CredentialSource {
  const parsed = parseSourceSyntax(raw);
  // The schema has already rejected anything unparseable.
  if ('problem' in parsed) {
    throw new AgentdError('INTERNAL', `unvalidated credential source: ${parsed.problem}`);
  }
  if (parsed.kind === 'file') return { kind: 'file', path: resolve(dir, parsed.path), raw };
  return { ...parsed, raw: looksLikeTokenName(parsed.name) ? TOKEN_LIKE_SOURCE : raw };
}

function durationMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new AgentdError('INTERNAL', `unvalidated duration ${describe(text)}`);
  return ms;
}

export interface LoadOptions {
  /** Value of --config. */
  flag?: string;
  env?: NodeJS.ProcessEnv;
  home?: string;
  uid?: number;
  /**
   * Called once while the file is checked, when the YAML's tokens are no longer held (see
   * composedDocument): a reload's thread collects its garbage there (reload-worker.ts, collectGarbage),
   * which V8 would do only once the heap had grown as much again. Measured on a 4 MiB file of
   * 52,000 one-line agents: the thread's process peaked at 691 MB without it, 484 MB with it.
   */
  collect?: () => void;
}

/** Reads the first config file that exists on the search path and parses it. */
export async function loadConfig(opts: LoadOptions = {}): Promise<Settings> {
  const env = opts.env ?? process.env;
  const home = opts.home ?? homedir();
  const uid = opts.uid ?? currentUid();
  const candidates = configSearchPath({ flag: opts.flag, env, home }).map((p) => resolve(p));
  for (const file of candidates) {
    let text: string;
    try {
      text = await readConfigFile(file);
    } catch (error) {
      // Not a regular file, or too large: already said.
      if (error instanceof AgentdError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') continue;
      throw readError(file, code, error);
    }
    return parseConfig(text, file, env, uid, home, opts.collect);
  }
  throw notFound(candidates, opts.flag, env);
}

function readError(file: string, code: string | undefined, cause: unknown): AgentdError {
  const message =
    code === 'EACCES' || code === 'EPERM'
      ? `cannot read the configuration file ${file}: permission denied; make it readable by the user running agentd`
      : code === 'ELOOP'
        ? `cannot read the configuration file ${file}: its symbolic links lead round in a loop (or more than 40 deep); point at the agentd.yaml file itself, or fix the link (ls -l ${file})`
        : `cannot read the configuration file ${file}: ${errorMessage(cause)}`;
  return new AgentdError('CONFIG_NOT_FOUND', message, { operation: 'read configuration', cause });
}

function notFound(candidates: string[], flag: string | undefined, env: NodeJS.ProcessEnv): AgentdError {
  const explicit =
    flag !== undefined && flag !== '' ? '--config' : env.AGENTD_CONFIG ? 'AGENTD_CONFIG' : undefined;
  const fix =
    explicit === undefined
      ? 'Create one of these files, set AGENTD_CONFIG=/path/to/agentd.yaml, or pass --config /path/to/agentd.yaml.'
      : `Check the path given by ${explicit} or create the file there; without ${explicit} the default locations are searched.`;
  const message = [
    'no configuration file found; looked at:',
    ...candidates.map((c) => `  ${c}${explicit === undefined ? '' : ` (from ${explicit})`}`),
    fix,
    `A complete, commented example: ${EXAMPLE_CONFIG}`,
  ].join('\n');
  return new AgentdError('CONFIG_NOT_FOUND', message, { operation: 'find configuration' });
}
