/**
 * The session containers' seccomp profile: the host's default Podman profile with user namespaces and
 * keyrings refused (src/adapters/seccomp-profile.ts), what doctor says of it, and what happens without one.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLONE_NEWUSER,
  deriveSeccompProfile,
  KEYRING_SYSCALLS,
  keyringRules,
  NAMESPACE_SYSCALLS,
  namespaceRules,
  prepareSeccompProfile,
  SECCOMP_PROFILE_FILE,
  type SeccompProfile,
} from '../../src/adapters/seccomp-profile.js';
import { parseConfig } from '../../src/config/load.js';
import { runPreflight } from '../../src/daemon/preflight.js';
import { passingPreflightPodman } from '../helpers/preflight-podman.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(cleanupAll);

/** A small default profile in the shape of containers-common's seccomp.json. */
const DEFAULT_PROFILE = {
  defaultAction: 'SCMP_ACT_ERRNO',
  defaultErrnoRet: 38,
  defaultErrno: 'ENOSYS',
  archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] }],
  syscalls: [
    {
      names: ['bdflush', 'kexec_load'],
      action: 'SCMP_ACT_ERRNO',
      args: [],
      comment: '',
      includes: {},
      excludes: {},
      errnoRet: 1,
      errno: 'EPERM',
    },
    {
      names: ['read', 'clone', 'clone3', 'execve', 'keyctl', 'unshare', 'write'],
      action: 'SCMP_ACT_ALLOW',
      args: [],
      comment: '',
      includes: {},
      excludes: {},
    },
    {
      names: ['personality'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: 4294967295, valueTwo: 0, op: 'SCMP_CMP_EQ' }],
      comment: '',
      includes: {},
      excludes: {},
    },
    {
      names: ['clone'],
      action: 'SCMP_ACT_ALLOW',
      args: null,
      comment: 'a rule of clone alone',
      includes: {},
    },
    {
      names: ['setns', 'unshare'],
      action: 'SCMP_ACT_ALLOW',
      args: [],
      comment: '',
      includes: { caps: ['CAP_SYS_ADMIN'] },
      excludes: {},
    },
    {
      names: ['socket'],
      action: 'SCMP_ACT_ALLOW',
      args: null,
      comment: '',
      includes: { caps: ['CAP_AUDIT_WRITE'] },
    },
  ],
};

function derived(profile: unknown = DEFAULT_PROFILE): SeccompProfile {
  const result = deriveSeccompProfile(JSON.stringify(profile));
  if ('problem' in result) throw new Error(result.problem);
  return result.profile;
}

type Rule = NonNullable<SeccompProfile['syscalls']>[number];

/**
 * What the profile does with one call, as Podman (containers/common) filters its rules for a container
 * (includes/excludes by the container's arch and bounding capabilities) and libseccomp then matches
 * them. The rules that match must agree (none of ours overlap): their action, else the default.
 */
function decide(
  profile: SeccompProfile,
  call: { name: string; args?: number[]; caps?: string[]; arch?: string },
): string {
  const caps = call.caps ?? ['CAP_CHOWN', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID'];
  const arch = call.arch ?? 'amd64';
  const applies = (rule: Rule) => {
    if (rule.excludes?.arches?.includes(arch)) return false;
    if (rule.excludes?.caps?.some((c) => caps.includes(c))) return false;
    if (rule.includes?.arches && rule.includes.arches.length > 0 && !rule.includes.arches.includes(arch))
      return false;
    if (rule.includes?.caps && !rule.includes.caps.every((c) => caps.includes(c))) return false;
    return true;
  };
  const matches = (rule: Rule) =>
    (rule.args ?? []).every((arg) => {
      const value = call.args?.[arg.index] ?? 0;
      if (arg.op === 'SCMP_CMP_MASKED_EQ') return (value & arg.value) === (arg.valueTwo ?? 0);
      if (arg.op === 'SCMP_CMP_EQ') return value === arg.value;
      throw new Error(`op ${arg.op} not modelled`);
    });
  const actions = new Set(
    (profile.syscalls ?? [])
      .filter((rule) => rule.names?.includes(call.name) && applies(rule) && matches(rule))
      .map((rule) => `${rule.action}${rule.errnoRet === undefined ? '' : `(${rule.errnoRet})`}`),
  );
  expect(actions.size, `rules of ${call.name} that disagree: ${[...actions].join(', ')}`).toBeLessThanOrEqual(
    1,
  );
  return [...actions][0] ?? `default ${profile.defaultAction}`;
}

// Flags as glibc and programs pass them.
const SIGCHLD = 17;
const FORK = SIGCHLD | 0x01000000 | 0x00200000; // CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID
const THREAD = 0x3d0f00; // pthread_create: CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
const CLONE_NEWNS = 0x00020000;
const CLONE_FILES = 0x00000400;

describe('the derived profile', () => {
  it('keeps every rule of the default but those of clone, clone3, unshare and the keyrings, which it replaces', () => {
    const profile = derived();
    const { syscalls, ...rest } = profile;
    const { syscalls: defaults, ...defaultRest } = DEFAULT_PROFILE;
    // Everything around the rules, as it was.
    expect(rest).toEqual(defaultRest);
    const added = [...namespaceRules(), ...keyringRules()];
    const kept = (syscalls ?? []).slice(0, (syscalls ?? []).length - added.length);
    expect((syscalls ?? []).slice(kept.length)).toEqual(added);
    // The default's rules in order, without the three names; a rule left without a name is gone.
    expect(kept).toEqual([
      defaults[0],
      { ...defaults[1], names: ['read', 'execve', 'write'] },
      defaults[2],
      { ...defaults[4], names: ['setns'] },
      defaults[5],
    ]);
    for (const rule of kept) {
      for (const name of [...NAMESPACE_SYSCALLS, ...KEYRING_SYSCALLS]) expect(rule.names).not.toContain(name);
    }
  });

  it('refuses the kernel keyrings (ENOSYS, as a kernel without them), whatever the capabilities', () => {
    // Podman's default allows keyctl; a keyring is not namespaced: every session's agent (host uid
    // 61000) shared one user keyring, where one session left a credential for the next to read.
    const profile = derived();
    for (const caps of [undefined, ['CAP_SYS_ADMIN', 'CAP_SETUID']]) {
      for (const name of ['keyctl', 'add_key', 'request_key']) {
        expect(decide(profile, { name, ...(caps === undefined ? {} : { caps }) })).toBe('SCMP_ACT_ERRNO(38)');
      }
    }
  });

  it('allows clone and unshare only without CLONE_NEWUSER (a masked comparison, as Docker does), and answers clone3 ENOSYS', () => {
    const profile = derived();
    const rules = profile.syscalls ?? [];
    expect(rules).toContainEqual(
      expect.objectContaining({
        names: ['clone'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value: 0x10000000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
      }),
    );
    expect(rules).toContainEqual(
      expect.objectContaining({
        names: ['unshare'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value: 0x10000000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
      }),
    );
    expect(rules).toContainEqual(
      expect.objectContaining({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }),
    );
    expect(CLONE_NEWUSER).toBe(0x10000000);
  });

  it('lets an agent fork, start threads and unshare what needs no namespace, and refuses a user namespace', () => {
    const profile = derived();
    expect(decide(profile, { name: 'clone', args: [FORK] })).toBe('SCMP_ACT_ALLOW');
    expect(decide(profile, { name: 'clone', args: [THREAD] })).toBe('SCMP_ACT_ALLOW');
    expect(decide(profile, { name: 'unshare', args: [CLONE_FILES] })).toBe('SCMP_ACT_ALLOW');
    // Other namespaces pass seccomp; the kernel wants CAP_SYS_ADMIN for them, which the agent lacks.
    expect(decide(profile, { name: 'unshare', args: [CLONE_NEWNS] })).toBe('SCMP_ACT_ALLOW');
    expect(decide(profile, { name: 'unshare', args: [CLONE_NEWUSER] })).toBe('SCMP_ACT_ERRNO(1)');
    expect(decide(profile, { name: 'unshare', args: [CLONE_NEWUSER | CLONE_NEWNS] })).toBe(
      'SCMP_ACT_ERRNO(1)',
    );
    expect(decide(profile, { name: 'clone', args: [CLONE_NEWUSER | SIGCHLD] })).toBe('SCMP_ACT_ERRNO(1)');
    expect(decide(profile, { name: 'clone3' })).toBe('SCMP_ACT_ERRNO(38)');
    // s390x passes clone's flags second.
    expect(decide(profile, { name: 'clone', arch: 's390x', args: [0, FORK] })).toBe('SCMP_ACT_ALLOW');
    expect(decide(profile, { name: 'clone', arch: 's390x', args: [0, CLONE_NEWUSER] })).toBe(
      'SCMP_ACT_ERRNO(1)',
    );
    // The rest as the default has it.
    expect(decide(profile, { name: 'read' })).toBe('SCMP_ACT_ALLOW');
    expect(decide(profile, { name: 'setns' })).toBe('default SCMP_ACT_ERRNO');
  });

  it('leaves an agent given CAP_SYS_ADMIN (cap_add) the three calls, as the default did', () => {
    const profile = derived();
    const caps = ['CAP_CHOWN', 'CAP_SYS_ADMIN'];
    expect(decide(profile, { name: 'unshare', args: [CLONE_NEWUSER], caps })).toBe('SCMP_ACT_ALLOW');
    expect(decide(profile, { name: 'clone', args: [CLONE_NEWUSER | SIGCHLD], caps })).toBe('SCMP_ACT_ALLOW');
    expect(decide(profile, { name: 'clone3', caps })).toBe('SCMP_ACT_ALLOW');
    expect(decide(profile, { name: 'setns', caps })).toBe('SCMP_ACT_ALLOW');
  });

  it('refuses what is not a profile Podman reads, saying what is wrong', () => {
    expect(deriveSeccompProfile('{"defaultAction": "SCMP_ACT_ERRNO", ')).toMatchObject({
      problem: expect.stringMatching(/^it is not JSON/),
    });
    expect(deriveSeccompProfile('[]')).toMatchObject({
      problem: expect.stringMatching(/^it is not a seccomp profile/),
    });
    expect(deriveSeccompProfile('{"syscalls": []}')).toMatchObject({
      problem: expect.stringContaining('at defaultAction'),
    });
    expect(
      deriveSeccompProfile(
        JSON.stringify({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'] }] }),
      ),
    ).toMatchObject({ problem: expect.stringContaining('at syscalls.0.action') });
    // A number JSON.parse cannot keep exactly would change the rule it is in.
    expect(
      deriveSeccompProfile(
        '{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":18446744073709551615,"op":"SCMP_CMP_EQ"}]}]}',
      ),
    ).toMatchObject({ problem: expect.stringContaining('at syscalls.0.args.0.value') });
  });
});

describe('at start', () => {
  it('writes the derived profile into the state dir, mode 0600', async () => {
    const dir = makeTempDir('agentd-unit-seccomp-');
    const source = join(dir, 'seccomp.json.default');
    writeFileSync(source, JSON.stringify(DEFAULT_PROFILE));
    const state = makeTempDir('agentd-unit-seccomp-state-');
    const prepared = await prepareSeccompProfile(async () => ({ enabled: true, profilePath: source }), state);
    expect(prepared).toEqual({ path: join(state, SECCOMP_PROFILE_FILE), source });
    const path = join(state, SECCOMP_PROFILE_FILE);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(derived());
  });

  it.each([
    ['a malformed default profile', 'not json', /seccomp profile .*seccomp\.json\.default: it is not JSON/],
    ['a default profile of another shape', '{"defaultAction": 1}', /it is not a seccomp profile/],
    [
      'no default profile file',
      undefined,
      /cannot read Podman's default seccomp profile .*seccomp\.json\.default: ENOENT/,
    ],
  ])(
    'with %s: no profile, and the problem names the file and what agents can then do',
    async (_, text, message) => {
      const dir = makeTempDir('agentd-unit-seccomp-');
      const source = join(dir, 'seccomp.json.default');
      if (text !== undefined) writeFileSync(source, text);
      const state = makeTempDir('agentd-unit-seccomp-state-');
      // An earlier start's profile does not stay to look as if it were in use.
      writeFileSync(join(state, SECCOMP_PROFILE_FILE), '{}');
      const prepared = await prepareSeccompProfile(
        async () => ({ enabled: true, profilePath: source }),
        state,
      );
      expect(prepared).toMatchObject({ source, problem: expect.stringMatching(message) });
      expect('fix' in prepared && prepared.fix).toContain(source);
      expect(() => statSync(join(state, SECCOMP_PROFILE_FILE))).toThrow(/ENOENT/);
    },
  );

  it('says so when Podman applies no seccomp, names no file, or cannot be asked', async () => {
    const state = makeTempDir('agentd-unit-seccomp-state-');
    expect(
      await prepareSeccompProfile(async () => ({ enabled: false, profilePath: '' }), state),
    ).toMatchObject({
      problem: expect.stringContaining('seccompEnabled is false'),
    });
    expect(
      await prepareSeccompProfile(async () => ({ enabled: true, profilePath: '' }), state),
    ).toMatchObject({
      problem: expect.stringContaining('seccompProfilePath is empty'),
    });
    expect(
      await prepareSeccompProfile(async () => {
        throw new Error('podman info: exit 125');
      }, state),
    ).toMatchObject({ problem: expect.stringContaining('exit 125') });
  });
});

describe('doctor', () => {
  const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000' };

  async function seccompCheck(profilePath: string, hosts = '') {
    const dir = makeTempDir('agentd-unit-seccomp-doctor-');
    const text = `daemon:\n  state_dir: ${join(dir, 'state')}\n${hosts}agents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n`;
    const podman = passingPreflightPodman({ seccompDefault: async () => ({ enabled: true, profilePath }) });
    const results = await runPreflight({
      settings: parseConfig(text, join(dir, 'agentd.yaml'), ENV, 0),
      podman,
      env: ENV,
      depth: 'full',
      uid: 0,
    });
    return results.filter((r) => r.check.endsWith('seccomp profile'));
  }

  it('warns, naming the file and that agents can create user namespaces, when the default is malformed', async () => {
    const dir = makeTempDir('agentd-unit-seccomp-');
    const source = join(dir, 'seccomp.json');
    writeFileSync(source, '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [');
    const [check, ...rest] = await seccompCheck(source);
    expect(rest).toEqual([]);
    expect(check).toMatchObject({ check: 'seccomp profile', status: 'warn' });
    expect(check?.message).toContain(source);
    expect(check?.message).toContain('agents can create user namespaces');
    expect(check?.fix).toContain('restart agentd');
  });

  it('is ok with a readable default, and looks only at the local Podman', async () => {
    const dir = makeTempDir('agentd-unit-seccomp-');
    const source = join(dir, 'seccomp.json');
    writeFileSync(source, JSON.stringify(DEFAULT_PROFILE));
    expect(await seccompCheck(source)).toMatchObject([{ check: 'seccomp profile', status: 'ok' }]);
    const hosts = 'hosts:\n  - { name: here }\n  - { name: near, url: "unix:///run/podman/podman.sock" }\n';
    expect((await seccompCheck(source, hosts)).map((c) => [c.check, c.status])).toEqual([
      ['host here: seccomp profile', 'ok'],
    ]);
  });
});
