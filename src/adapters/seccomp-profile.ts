import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { errorMessage } from '../errors.js';
import { currentUid } from './ownership.js';
import { READ_NO_FOLLOW, removeQuietly, StateDirError, writeFileAtomic } from './state-files.js';

/**
 * The seccomp profile of session containers on the local Podman: the host's default profile (the one
 * Podman would apply) with user namespaces and the kernel's keyrings refused. Podman's default allows
 * clone, clone3 and unshare unconditionally, so an agent without capabilities can still make a user
 * namespace and be root with a full capability set inside it, which opens the kernel's namespace-only
 * code (nf_tables, mounts, overlayfs) to it. It allows keyctl too, and keyrings are not namespaced:
 * every session's agent user (host uid 61000 without `user_namespace: auto`) shares one user keyring
 * on the host, where a session left a credential that a later session of any agent read. Derived at
 * each start, so a host's updated default profile is followed.
 */

/** CLONE_NEWUSER: the flag of clone and unshare that makes a user namespace. */
export const CLONE_NEWUSER = 0x10000000;
/** Where the derived profile is kept, in the daemon's state dir. */
export const SECCOMP_PROFILE_FILE = 'seccomp.json';
/** The syscalls of user namespaces, whose rules the derivation replaces (namespaceRules). */
export const NAMESPACE_SYSCALLS: readonly string[] = ['clone', 'clone3', 'unshare'];
/** The syscalls of the kernel's keyrings, refused to every session (keyringRules). */
export const KEYRING_SYSCALLS: readonly string[] = ['keyctl', 'add_key', 'request_key'];
/** The syscalls whose rules the derivation replaces: every other rule of the host's profile stays as it is. */
const REPLACED_SYSCALLS: readonly string[] = [...NAMESPACE_SYSCALLS, ...KEYRING_SYSCALLS];
/** More than any real profile (Podman's is 16 KB): a profile this large is not read whole. */
const MAX_PROFILE_BYTES = 4 * 1024 * 1024;
const EPERM = 1;
const ENOSYS = 38;
/** s390 and s390x pass clone's flags second (the stack first). */
const S390 = ['s390', 's390x'];
/** An agent given CAP_SYS_ADMIN (cap_add) keeps what Podman's default gives it: these syscalls unconditionally. */
const SYS_ADMIN = ['CAP_SYS_ADMIN'];

const argSchema = z.looseObject({
  index: z.number().int().min(0).max(5),
  // zod's int() stops at 2^53: past it a number is no longer what the file said, and the rule would change.
  value: z.number().int().min(0),
  valueTwo: z.number().int().min(0).optional(),
  op: z.string(),
});
const filterSchema = z.looseObject({
  caps: z.array(z.string()).nullish(),
  arches: z.array(z.string()).nullish(),
});
const ruleSchema = z.looseObject({
  names: z.array(z.string()).nullish(),
  name: z.string().optional(),
  action: z.string().min(1),
  args: z.array(argSchema).nullish(),
  includes: filterSchema.nullish(),
  excludes: filterSchema.nullish(),
  errnoRet: z.number().int().min(0).optional(),
});
/** The shape Podman (containers/common) reads; every other field is kept as it is. */
export const seccompProfileSchema = z.looseObject({
  defaultAction: z.string().min(1),
  syscalls: z.array(ruleSchema).nullish(),
});
export type SeccompProfile = z.infer<typeof seccompProfileSchema>;
type SeccompRule = z.infer<typeof ruleSchema>;

/** A rule on the CLONE_NEWUSER bit of argument `index`: `clear` when the flags lack it, else `set`. */
function newUserBit(index: number, bit: 'clear' | 'set') {
  return [
    { index, value: CLONE_NEWUSER, valueTwo: bit === 'clear' ? 0 : CLONE_NEWUSER, op: 'SCMP_CMP_MASKED_EQ' },
  ];
}

/**
 * The rules that take the place of every rule of the host's profile for clone, clone3 and unshare.
 * Without CAP_SYS_ADMIN in the container's bounding set: clone and unshare without CLONE_NEWUSER are
 * allowed (fork, threads, unshare(CLONE_FILES)), with it refused with EPERM (a clear "Operation not
 * permitted" rather than the profile's default ENOSYS); clone3, whose flags sit in a struct seccomp
 * cannot read, answers ENOSYS, so glibc falls back to clone (as Docker's default profile does). Other
 * namespace flags need CAP_SYS_ADMIN anyway, which the agent does not have.
 */
export function namespaceRules(): SeccompRule[] {
  const without = { caps: SYS_ADMIN };
  return [
    { names: ['unshare'], action: 'SCMP_ACT_ALLOW', args: newUserBit(0, 'clear'), excludes: without },
    {
      names: ['unshare'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: EPERM,
      args: newUserBit(0, 'set'),
      excludes: without,
    },
    {
      names: ['clone'],
      action: 'SCMP_ACT_ALLOW',
      args: newUserBit(0, 'clear'),
      excludes: { ...without, arches: S390 },
    },
    {
      names: ['clone'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: EPERM,
      args: newUserBit(0, 'set'),
      excludes: { ...without, arches: S390 },
    },
    {
      names: ['clone'],
      action: 'SCMP_ACT_ALLOW',
      args: newUserBit(1, 'clear'),
      includes: { arches: S390 },
      excludes: without,
    },
    {
      names: ['clone'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: EPERM,
      args: newUserBit(1, 'set'),
      includes: { arches: S390 },
      excludes: without,
    },
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS, excludes: without },
    { names: [...NAMESPACE_SYSCALLS], action: 'SCMP_ACT_ALLOW', includes: { caps: SYS_ADMIN } },
  ];
}

/**
 * The rules that take the place of every rule of the host's profile for keyctl, add_key and
 * request_key: ENOSYS, as a kernel without keyrings answers (what programs fall back on; Podman's
 * default answers add_key and request_key so already), whatever the container's capabilities: a
 * keyring is shared by every process of its uid on the host, capabilities or not (Docker's default
 * profile refuses the three for the same reason). runc joins the container's session keyring before
 * the profile applies.
 */
export function keyringRules(): SeccompRule[] {
  return [{ names: [...KEYRING_SYSCALLS], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS }];
}

/**
 * The host's default profile (its text) with user namespaces and keyrings refused: clone, clone3,
 * unshare, keyctl, add_key and request_key taken out of every rule that names them (a rule left without
 * names goes), and namespaceRules() and keyringRules() added; everything else as it was. The problem,
 * when the text is not a profile Podman would read.
 */
export function deriveSeccompProfile(text: string): { profile: SeccompProfile } | { problem: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { problem: `it is not JSON (${errorMessage(error)})` };
  }
  const parsed = seccompProfileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined || issue.path.length === 0 ? '' : ` at ${issue.path.join('.')}`;
    return {
      problem: `it is not a seccomp profile: ${issue?.message ?? 'unexpected shape'}${where}`,
    };
  }
  const kept: SeccompRule[] = [];
  for (const rule of parsed.data.syscalls ?? []) {
    if (rule.name !== undefined && REPLACED_SYSCALLS.includes(rule.name)) continue;
    if (rule.names === undefined || rule.names === null) {
      kept.push(rule);
      continue;
    }
    const names = rule.names.filter((name) => !REPLACED_SYSCALLS.includes(name));
    if (names.length === rule.names.length) kept.push(rule);
    else if (names.length > 0 || rule.name !== undefined) kept.push({ ...rule, names });
  }
  return { profile: { ...parsed.data, syscalls: [...kept, ...namespaceRules(), ...keyringRules()] } };
}

/** What Podman says of its seccomp: whether it applies one, and the file of its default profile ('' for its built-in one). */
export interface SeccompDefault {
  enabled: boolean;
  profilePath: string;
}

/** Why no derived profile: what was found (naming the file when there is one) and the fix. */
export interface SeccompProfileProblem {
  problem: string;
  fix: string;
  source?: string;
}

/** What the agents can do when their containers get Podman's default profile instead. */
export const SECCOMP_FALLBACK =
  "session containers on this machine get Podman's default seccomp profile, under which agents can create user namespaces (and reach the kernel code only those open: nf_tables, mounts, overlayfs) and share the kernel's keyrings of their uid with other sessions";

/**
 * The local Podman's default profile (`source`) and the profile derived from it; never throws: a
 * problem says what was found, naming the file, and the fix.
 */
export async function readSeccompDefault(
  locate: () => Promise<SeccompDefault>,
): Promise<{ source: string; profile: SeccompProfile } | SeccompProfileProblem> {
  let found: SeccompDefault;
  try {
    found = await locate();
  } catch (error) {
    return {
      problem: `could not ask Podman for its default seccomp profile (podman info): ${errorMessage(error)}`,
      fix: "Check that `podman info` works for the daemon's user, then restart agentd",
    };
  }
  if (!found.enabled) {
    return {
      problem: 'Podman applies no seccomp profile at all (podman info: seccompEnabled is false)',
      fix: 'Use a Podman built with seccomp support, on a kernel with seccomp, then restart agentd',
    };
  }
  const source = found.profilePath;
  if (source === '' || source === 'unconfined') {
    return {
      problem:
        source === ''
          ? 'Podman names no default seccomp profile file (podman info: seccompProfilePath is empty)'
          : 'the seccomp_profile of containers.conf is `unconfined`',
      fix: 'Install containers-common (it ships /usr/share/containers/seccomp.json), or set seccomp_profile in containers.conf to a profile file, then restart agentd',
    };
  }
  let text: string;
  try {
    text = readProfileFile(source);
  } catch (error) {
    return {
      source,
      problem: `cannot read Podman's default seccomp profile ${source}: ${errorMessage(error)}`,
      fix: `Make ${source} a readable profile (containers-common ships it), or set seccomp_profile in containers.conf to one, then restart agentd`,
    };
  }
  const derived = deriveSeccompProfile(text);
  if ('problem' in derived) {
    return {
      source,
      problem: `Podman's default seccomp profile ${source}: ${derived.problem}`,
      fix: `Restore ${source} (containers-common ships it), or set seccomp_profile in containers.conf to a valid profile, then restart agentd`,
    };
  }
  return { source, profile: derived.profile };
}

/** The derived profile at `path` (in the state dir), made from Podman's default profile `source`. */
export interface PreparedSeccompProfile {
  path: string;
  source: string;
  /**
   * Set when the state dir did not take it (full, read-only): no session may be given `path` until
   * `write()` returns (it throws StateDirError meanwhile). Sessions never fall back to Podman's
   * default for this: the profile exists, only the room for it is missing.
   */
  unwritten?: { error: StateDirError; write(): void };
}

/**
 * At start: the derived profile at `<state_dir>/seccomp.json` (mode 0600, written atomically), for
 * `podman --security-opt seccomp=` (which reads it on this machine). A file already there with exactly
 * that text, that only this user or root can write, is used as it is: a start on a full state dir
 * keeps an earlier start's profile. When it cannot be written, `unwritten`. Without a default profile
 * to derive it from, why there is none: sessions then run under Podman's default (SECCOMP_FALLBACK).
 * Never throws.
 */
export async function prepareSeccompProfile(
  locate: () => Promise<SeccompDefault>,
  stateDir: string,
): Promise<PreparedSeccompProfile | SeccompProfileProblem> {
  const path = join(stateDir, SECCOMP_PROFILE_FILE);
  const found = await readSeccompDefault(locate);
  if ('problem' in found) {
    // An earlier start's profile would look in use: it is not.
    removeQuietly(path);
    return found;
  }
  const text = `${JSON.stringify(found.profile, null, 2)}\n`;
  if (holdsExactly(path, text)) return { path, source: found.source };
  const write = () =>
    writeFileAtomic(path, text, { operation: "write the session containers' seccomp profile" });
  try {
    write();
  } catch (error) {
    const problem =
      error instanceof StateDirError
        ? error
        : new StateDirError("write the session containers' seccomp profile", path, error);
    return { path, source: found.source, unwritten: { error: problem, write } };
  }
  return { path, source: found.source };
}

/**
 * Whether path is a regular file (not followed through a link) with exactly this text, that nobody but
 * this user or root may change (owned by one of them, not writable by group or others).
 */
function holdsExactly(path: string, text: string): boolean {
  const expected = Buffer.from(text);
  let fd: number;
  try {
    fd = openSync(path, READ_NO_FOLLOW);
  } catch {
    return false;
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile() || stat.size !== expected.length) return false;
    if ((stat.uid !== currentUid() && stat.uid !== 0) || (stat.mode & 0o022) !== 0) return false;
    const bytes = Buffer.alloc(expected.length + 1);
    let at = 0;
    while (at < bytes.length) {
      const read = readSync(fd, bytes, at, bytes.length - at, at);
      if (read === 0) break;
      at += read;
    }
    return at === expected.length && bytes.subarray(0, at).equals(expected);
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

/** A file's text, bounded in size. A link is followed: distributions link the default profile. */
function readProfileFile(path: string): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new Error('not a regular file');
    if (stat.size > MAX_PROFILE_BYTES) throw new Error(`larger than ${MAX_PROFILE_BYTES} bytes`);
    const bytes = Buffer.alloc(stat.size);
    let at = 0;
    while (at < bytes.length) {
      const read = readSync(fd, bytes, at, bytes.length - at, at);
      if (read === 0) break;
      at += read;
    }
    return bytes.subarray(0, at).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
