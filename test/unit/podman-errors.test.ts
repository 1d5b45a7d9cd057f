import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classifyPodmanFailure } from '../../src/adapters/podman-errors.js';

const base = { operation: 'create container agentd-x', argv: ['create', '--name', 'agentd-x'], stderr: '' };

describe('classifyPodmanFailure: errors an operator can act on', () => {
  it('says podman is not installed when the binary is missing', () => {
    const error = classifyPodmanFailure({ ...base, spawnErrorCode: 'ENOENT' });
    expect(error.code).toBe('PODMAN_NOT_INSTALLED');
    expect(error.message).toMatch(/podman is not installed.*apt-get install podman runc/);
  });

  it('names the deadline when podman hangs', () => {
    const error = classifyPodmanFailure({ ...base, timedOut: true, timeoutMs: 3000 });
    expect(error.code).toBe('PODMAN_TIMEOUT');
    expect(error.message).toContain('did not answer within 3s');
    expect(error.message).toContain('create container agentd-x');
  });

  it('names the containers.conf fix for the setrlimit EPERM error', () => {
    const stderr = 'Error: crun: setrlimit `RLIMIT_NOFILE`: Operation not permitted: OCI permission denied';
    const error = classifyPodmanFailure({ ...base, exitCode: 126, stderr });
    expect(error.code).toBe('PODMAN_RLIMIT');
    expect(error.message).toContain('default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]');
    expect(error.message).toContain('CONTAINERS_CONF');
  });

  it('names the subordinate id files when user_namespace: auto finds no free range', () => {
    // What Podman 4.3 printed for a second session at once with containers:2000000:65536.
    const stderr = 'Error: creating container storage: could not find enough available IDs';
    const error = classifyPodmanFailure({
      ...base,
      argv: ['run', '--name', 'agentd-x', 'img'],
      exitCode: 125,
      stderr,
    });
    expect(error.code).toBe('PODMAN_FAILED');
    expect(error.message).toContain('user_namespace: auto');
    expect(error.message).toContain('could not find enough available IDs');
    expect(error.message).toContain('/etc/subuid and /etc/subgid');
    expect(error.message).toContain('agentd doctor');
  });

  it('names a damaged secret store, its cause and where the repair is described', () => {
    for (const [argv, stderr] of [
      [['secret', 'create', 'agentd-x-s-0', '-'], 'Error: unexpected end of JSON input'],
      [['secret', 'rm', 'agentd-x-s-0'], 'Error: deleting secret 543cbc3b: no secret data with ID'],
      [['run', '--secret', 'agentd-x-s-0,type=mount'], 'Error: no secret data with ID 543cbc3b'],
    ] as const) {
      const error = classifyPodmanFailure({ operation: 'op', argv: [...argv], exitCode: 125, stderr });
      expect(error.code).toBe('PODMAN_FAILED');
      expect(error.message).toMatch(/^op: Podman could not read its secret store \(Error: /);
      expect(error.message).toContain('killed while writing');
      expect(error.message).toContain('"Troubleshooting" in the README');
    }
    // The same words from another command are not about the secret store.
    const other = classifyPodmanFailure({
      ...base,
      exitCode: 125,
      stderr: 'Error: unexpected end of JSON input',
    });
    expect(other.message).not.toContain('secret store');
  });

  it('names the runc fix for the hybrid cgroups error', () => {
    const stderr = 'Error: crun: cgroups in hybrid mode not supported, drop all controllers from cgroupv2';
    const error = classifyPodmanFailure({ ...base, exitCode: 126, stderr });
    expect(error.code).toBe('PODMAN_CGROUPS');
    expect(error.message).toContain('runtime = "runc"');
  });

  it('says how to build a missing local image and how to pull a registry one', () => {
    const stderr = 'Error: localhost/nope:latest: image not known';
    const local = classifyPodmanFailure({ ...base, exitCode: 125, stderr }, 'localhost/nope:latest');
    expect(local.code).toBe('IMAGE_NOT_FOUND');
    expect(local.message).toMatch(/localhost\/nope:latest is not available.*build it/);
    // The script it names exists where agentd runs from (a checkout or an installed package).
    const script = /`bash (\S+\/scripts\/build-image\.sh) localhost\/nope:latest`/.exec(local.message)?.[1];
    expect(script && existsSync(script), local.message).toBe(true);
    const remote = classifyPodmanFailure(
      { ...base, exitCode: 125, stderr: 'Error: initializing source docker://quay.io/x/y: manifest unknown' },
      'quay.io/x/y',
    );
    expect(remote.message).toContain('podman pull quay.io/x/y');
  });

  it('keeps the command line, exit code and stderr of anything else', () => {
    const error = classifyPodmanFailure({ ...base, exitCode: 125, stderr: 'Error: name already in use' });
    expect(error.code).toBe('PODMAN_FAILED');
    expect(error.exitCode).toBe(125);
    expect(error.argv).toEqual(base.argv);
    expect(error.message).toContain('exit 125');
    expect(error.message).toContain('name already in use');
    expect(error.message).toContain('podman create --name agentd-x');
  });
});

describe('classifyPodmanFailure: a containers.conf Podman cannot use', () => {
  // What Podman 4.3.1 prints, through logrus, when CONTAINERS_CONF names a missing file and when the
  // file named does not parse ("unexpected EOF" was taken for an unreachable host).
  const cases = [
    {
      stderr:
        'time="2026-12-08T02:44:44Z" level=error msg="finding config on system: CONTAINERS_CONF file: stat /etc/agentd/missing.conf: no such file or directory"',
      names: 'CONTAINERS_CONF names /etc/agentd/missing.conf, which Podman cannot open',
    },
    {
      stderr:
        'time="2026-12-08T02:44:59Z" level=error msg="reading system config \\"/etc/agentd/bad.conf\\": decode configuration /etc/agentd/bad.conf: toml: line 1 (last key \\"x\\"): unexpected EOF; expected value"',
      names: 'Podman cannot read its configuration file /etc/agentd/bad.conf',
    },
  ];
  for (const { stderr, names } of cases) {
    it(`names the file and the fix: ${names.slice(0, 40)}`, () => {
      const error = classifyPodmanFailure({
        operation: 'list containers',
        argv: ['ps'],
        exitCode: 125,
        stderr,
      });
      expect(error.code).toBe('PODMAN_FAILED');
      expect(error.message).toContain(`list containers: ${names}`);
      expect(error.message).toContain('CONTAINERS_CONF, in the environment agentd runs with');
      expect(error.message).not.toContain('cannot reach the Podman host');
      expect(error.message).not.toContain('podman.socket');
      expect(error.message).not.toMatch(/^\s+at /m);
      expect(error.fix).toMatch(/^(Point|Fix) /);
    });
  }
});
