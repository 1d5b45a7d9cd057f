import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { cgroupVersion } from '../../src/adapters/fs-checks.js';
import { runCli } from '../helpers/daemon.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(cleanupAll);

/** doctor warns on a cgroup v1 machine (socket buffers outside the memory limit), whatever the configuration. */
const CGROUP_V1 = cgroupVersion() === 'v1';

interface Line {
  status: string;
  check: string;
  message: string;
  fix?: string;
}

/** doctor's report as rows: `ok    check: message`, then `      fix: ...` under a problem. */
function rows(stdout: string): Line[] {
  const out: Line[] = [];
  for (const line of stdout.split('\n')) {
    const row = /^(ok|warn|fail) +(.+?): (.*)$/.exec(line);
    if (row) out.push({ status: row[1] as string, check: row[2] as string, message: row[3] as string });
    const fix = /^ {6}fix: (.*)$/.exec(line);
    const last = out[out.length - 1];
    if (fix && last) last.fix = fix[1] as string;
  }
  return out;
}

function row(lines: Line[], check: string): Line {
  const found = lines.find((l) => l.check === check);
  if (!found) throw new Error(`no ${check} row in ${JSON.stringify(lines, null, 2)}`);
  return found;
}

/** A config in a fresh temp dir; its socket and state dir live there too. */
function writeConfig(agents: Record<string, unknown>[], daemon: Record<string, unknown> = {}) {
  const dir = makeTempDir('agentd-doctor-');
  const file = join(dir, 'agentd.yaml');
  const config = {
    daemon: { socket: join(dir, 'run', 'agentd.sock'), state_dir: join(dir, 'state'), ...daemon },
    agents,
  };
  writeFileSync(file, stringify(config));
  return { dir, file, stateDir: join(dir, 'state'), socketDir: join(dir, 'run') };
}

describe('agentd doctor', () => {
  it('passes a good configuration: every check ok, exit 0, and no credential value printed', async () => {
    const envValue = `env-${randomBytes(12).toString('hex')}`;
    const fileValue = `file-${randomBytes(12).toString('hex')}`;
    const dir = makeTempDir('agentd-doctor-secret-');
    const secretFile = join(dir, 'token');
    writeFileSync(secretFile, `${fileValue}\n`, { mode: 0o600 });
    const { file } = writeConfig([
      {
        name: 'good',
        image: TEST_IMAGE,
        command: ['true'],
        credentials: [
          { name: 'API_KEY', source: 'env:AGENTD_DOCTOR_KEY' },
          { name: 'TOKEN', source: `file:${secretFile}` },
        ],
      },
    ]);
    const result = await runCli(['doctor', '--config', file], { env: { AGENTD_DOCTOR_KEY: envValue } });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const lines = rows(result.stdout);
    expect(lines.map((l) => l.check)).toEqual([
      'configuration',
      'podman',
      'runtime',
      'seccomp profile',
      `image ${TEST_IMAGE}`,
      'credential good/API_KEY',
      'credential good/TOKEN',
      'state dir',
      'socket dir',
      'free space',
      ...(cgroupVersion() === undefined ? [] : ['cgroups']),
    ]);
    expect(lines.filter((l) => l.status !== 'ok').map((l) => l.check)).toEqual(CGROUP_V1 ? ['cgroups'] : []);
    expect(row(lines, 'podman').message).toMatch(/^podman \d+\.\d+/);
    expect(row(lines, 'runtime').message).toMatch(`podman run --rm ${TEST_IMAGE} true works`);
    expect(result.stdout).toMatch(CGROUP_V1 ? /no check failed, 1 warning\(s\)\n$/ : /no check failed\n$/);
    for (const value of [envValue, fileValue]) {
      expect(result.stdout + result.stderr).not.toContain(value);
    }
  });

  it('names each problem with its fix and exits 1', async () => {
    const { file, stateDir, socketDir } = writeConfig([
      {
        name: 'broken',
        image: 'localhost/agentd-doctor-missing:1',
        command: ['true'],
        credentials: [
          { name: 'API_KEY', source: 'env:AGENTD_DOCTOR_UNSET' },
          { name: 'TOKEN', source: 'file:/nonexistent/agentd-doctor-token' },
        ],
      },
      // A registry on loopback where nothing listens: not present, and not pullable.
      { name: 'remote', image: '127.0.0.1:1/agentd/doctor:1', command: ['true'] },
    ]);
    // A state dir another user owns, and a socket dir anyone may write to.
    mkdirSync(stateDir);
    chownSync(stateDir, 65534, 65534);
    mkdirSync(socketDir);
    chmodSync(socketDir, 0o777);
    const result = await runCli(['doctor', '--config', file], { env: { AGENTD_DOCTOR_UNSET: undefined } });
    expect(result.code, result.stdout).toBe(1);
    const lines = rows(result.stdout);

    const missing = row(lines, 'image localhost/agentd-doctor-missing:1');
    expect(missing.status).toBe('fail');
    expect(missing.message).toContain('localhost/ images are never pulled');
    const script = /bash (\S+build-image\.sh) localhost\/agentd-doctor-missing:1/.exec(
      missing.fix ?? '',
    )?.[1];
    expect(script && existsSync(script), missing.fix).toBe(true);

    const remote = row(lines, 'image 127.0.0.1:1/agentd/doctor:1');
    expect(remote.status).toBe('fail');
    expect(remote.message).toMatch(/not present and cannot be pulled .*connection refused/);
    expect(remote.fix).toContain('podman pull 127.0.0.1:1/agentd/doctor:1');

    const env = row(lines, 'credential broken/API_KEY');
    expect(env.status).toBe('fail');
    expect(env.message).toContain('AGENTD_DOCTOR_UNSET');
    expect(env.fix).toMatch(/Set AGENTD_DOCTOR_UNSET .*EnvironmentFile/);
    const token = row(lines, 'credential broken/TOKEN');
    expect(token.status).toBe('fail');
    expect(token.message).toContain('/nonexistent/agentd-doctor-token');
    expect(token.fix).toContain('Create /nonexistent/agentd-doctor-token');

    const state = row(lines, 'state dir');
    expect(state.status).toBe('fail');
    expect(state.message).toMatch(
      /owned by uid 65534( \(nobody\))? with mode 0\d+, but agentd runs as uid 0/,
    );
    expect(state.fix).toContain(`chown 0 ${stateDir} && chmod 700 ${stateDir}`);
    const socket = row(lines, 'socket dir');
    expect(socket.status).toBe('fail');
    expect(socket.message).toContain('group or others may write to it');
    expect(socket.fix).toBe(`chmod 700 ${socketDir}`);

    // The runtime is still checked with the image that is present... none is: it says so.
    expect(row(lines, 'runtime')).toMatchObject({
      status: 'warn',
      message: expect.stringContaining('no agent image'),
    });
    expect(result.stdout).toMatch(
      new RegExp(`^6 check\\(s\\) failed, ${CGROUP_V1 ? 2 : 1} warning\\(s\\)`, 'm'),
    );
  });

  it('reads credentials from --env-file as the service would', async () => {
    const { dir, file } = writeConfig([
      {
        name: 'svc',
        image: TEST_IMAGE,
        command: ['true'],
        credentials: [{ name: 'API_KEY', source: 'env:AGENTD_DOCTOR_FROM_FILE' }],
      },
    ]);
    const envFile = join(dir, 'agentd.env');
    writeFileSync(envFile, '# credentials\nAGENTD_DOCTOR_FROM_FILE="quoted value"\n');
    const without = await runCli(['doctor', '--config', file]);
    expect(row(rows(without.stdout), 'credential svc/API_KEY').status).toBe('fail');
    const withFile = await runCli(['doctor', '--config', file, '--env-file', envFile]);
    expect(withFile.code, withFile.stdout).toBe(0);
    expect(row(rows(withFile.stdout), 'credential svc/API_KEY').status).toBe('ok');
    expect(withFile.stdout).not.toContain('quoted value');
  });

  it('says podman is missing, with the fix, when it is not on PATH', async () => {
    const { file } = writeConfig([{ name: 'x', image: TEST_IMAGE, command: ['true'] }]);
    const result = await runCli(['doctor', '--config', file], {
      env: { PATH: makeTempDir('agentd-nopath-') },
    });
    expect(result.code).toBe(1);
    const podman = row(rows(result.stdout), 'podman');
    expect(podman).toMatchObject({ status: 'fail', message: 'podman is not installed or not on PATH' });
    expect(podman.fix).toContain('apt-get install -y podman runc');
  });

  it('finds the runtime quirk a containers.conf causes, and names the fix', async () => {
    // Limits above the hard limit: the runtime cannot raise them here (no CAP_SYS_RESOURCE).
    const dir = makeTempDir('agentd-doctor-conf-');
    const conf = join(dir, 'containers.conf');
    writeFileSync(
      conf,
      '[containers]\ndefault_ulimits = ["nofile=4000000:4000000"]\n[engine]\nruntime = "runc"\n',
    );
    const direct = await execa('podman', ['run', '--rm', '--network', 'none', TEST_IMAGE, 'true'], {
      env: { CONTAINERS_CONF: conf },
      reject: false,
    });
    const { file } = writeConfig([{ name: 'x', image: TEST_IMAGE, command: ['true'] }]);
    const result = await runCli(['doctor', '--config', file], { env: { CONTAINERS_CONF: conf } });
    const runtime = row(rows(result.stdout), 'runtime');
    if (direct.exitCode === 0) {
      // A machine where the runtime may raise limits: doctor must agree that it works.
      expect(runtime.status).toBe('ok');
      return;
    }
    expect(direct.stderr).toMatch(/rlimit/i);
    expect(result.code).toBe(1);
    expect(runtime.status).toBe('fail');
    expect(runtime.message).toMatch(/may not raise resource limits/);
    expect(runtime.fix).toContain('default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]');
    expect(runtime.fix).toContain('CONTAINERS_CONF');
  });

  it('lists every problem of an invalid configuration and exits 1', async () => {
    const dir = makeTempDir('agentd-doctor-bad-');
    const file = join(dir, 'agentd.yaml');
    writeFileSync(file, 'agents:\n  - name: Bad\n    image: x\n    command: "true"\n');
    const result = await runCli(['doctor', '--config', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${file}: 2 problems in the configuration`);
    expect(result.stdout).toMatch(/^fail {2}configuration: /m);
  });
});
