import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { instanceIdOf } from '../../src/daemon/instance-id.js';
import { instanceSecretPrefix } from '../../src/runner/names.js';
import { removeInstanceObjects } from '../helpers/daemon.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { listAgentdContainers, listSecrets, TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll, makeTempDir, track } from '../helpers/resources.js';
import { recordInstance } from '../helpers/run-instances.js';

const ROOT = join(import.meta.dirname, '..', '..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** The environment of a user who has only the installed package: no AGENTD_* from the test run. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('AGENTD_')) env[key] = value;
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', ...extra };
}

let prefix = '';
let agentd = '';
let installed = '';
let packed: string[] = [];
let git: GitServer;

beforeAll(async () => {
  const dir = makeTempDir('agentd-package-');
  // dist/ is built by the test setup; --ignore-scripts keeps `npm pack` from rebuilding it under other tests.
  const pack = await execa('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    cwd: ROOT,
    env: cleanEnv(),
  });
  const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  packed = (info?.files ?? []).map((f) => f.path);
  prefix = join(dir, 'prefix');
  // A clean prefix, as `npm install -g` does it; from the npm cache, without asking the registry when it can.
  await execa(
    'npm',
    [
      'install',
      '--global',
      '--prefix',
      prefix,
      '--prefer-offline',
      '--no-audit',
      join(dir, info?.filename ?? ''),
    ],
    { cwd: dir, env: cleanEnv() },
  );
  agentd = join(prefix, 'bin', 'agentd');
  installed = join(prefix, 'lib', 'node_modules', 'agentd');
  git = await startGitServer();
}, 180_000);

afterAll(async () => {
  await git?.stop();
  await cleanupAll();
});

describe('the npm package, installed into a clean prefix', () => {
  it('ships the built CLI, the examples and the image build script, and no sources or tests', () => {
    expect(packed).toEqual(
      expect.arrayContaining([
        'bin/agentd',
        'dist/cli/index.js',
        'dist/cli/agentd.cjs',
        'examples/agentd.yaml',
        'examples/agentd.service',
        'scripts/build-image.sh',
        'docs/protocol.md',
        'docs/openapi.json',
        'docs/metrics.md',
        'README.md',
        'package.json',
      ]),
    );
    expect(packed.filter((p) => /^(src|test|bench)\//.test(p))).toEqual([]);
    // Only what it needs at run time: no devDependency is installed with it.
    const deps = readdirSync(join(installed, 'node_modules'));
    expect(deps).toEqual(expect.arrayContaining(['pino-pretty', 'xstate', 'clipanion']));
    for (const dev of ['typescript', 'vitest', '@biomejs', 'playwright-core'])
      expect(deps).not.toContain(dev);
  });

  it('every repository file its messages name is in the package', () => {
    const named = new Set<string>();
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith('.js')) {
          for (const m of readFileSync(path, 'utf8').matchAll(/\b((?:scripts|examples)\/[\w.-]+\.\w+)/g)) {
            named.add(m[1] as string);
          }
        }
      }
    };
    walk(join(installed, 'dist'));
    expect([...named].filter((file) => !existsSync(join(installed, file)))).toEqual([]);
  });

  it('agentd --version, help and validate work', async () => {
    const version = await execa(agentd, ['--version'], { env: cleanEnv() });
    expect(version.stdout).toBe(`agentd ${VERSION}`);
    const help = await execa(agentd, ['help'], { env: cleanEnv() });
    expect(help.stdout).toContain('agentd doctor [--config,-c PATH]');
    const validate = await execa(
      agentd,
      ['validate', '--config', join(installed, 'examples', 'agentd.yaml')],
      {
        env: cleanEnv(),
      },
    );
    expect(validate.stdout).toMatch(/examples\/agentd\.yaml: valid, 2 agent\(s\)/);
    // Commands other than the socket clients keep NODE_EXTRA_CA_CERTS: Node says it cannot load this one.
    const withCa = await execa(agentd, ['validate', '--config', join(installed, 'examples', 'agentd.yaml')], {
      env: cleanEnv({ NODE_EXTRA_CA_CERTS: '/nonexistent/agentd-ca.pem' }),
    });
    expect(withCa.stderr).toContain('Ignoring extra certs from `/nonexistent/agentd-ca.pem`');
  });

  it('the missing-image hint names the shipped build script by its installed path', async () => {
    const script = join(installed, 'scripts', 'build-image.sh');
    const hint = await execa(
      'node',
      [
        '--input-type=module',
        '-e',
        `import { imageNotFound } from ${JSON.stringify(join(installed, 'dist', 'adapters', 'podman-errors.js'))};
         console.log(imageNotFound('create container', 'localhost/x:y', { operation: 'create', argv: [], stderr: '' }).message);`,
      ],
      { env: cleanEnv() },
    );
    expect(hint.stdout).toContain(`bash ${script} localhost/x:y`);
    expect(existsSync(script)).toBe(true);
  });

  it('agentd start --log-format pretty runs a session, answers status and stops on SIGTERM', async () => {
    const dir = makeTempDir('agentd-package-daemon-');
    const socket = join(dir, 'agentd.sock');
    const config = join(dir, 'agentd.yaml');
    writeFileSync(
      config,
      stringify({
        daemon: { socket, state_dir: join(dir, 'state'), stop_grace: '2s' },
        agents: [
          { name: 'packed', image: TEST_IMAGE, command: ['sh', '-c', 'echo packed-ok'], network: 'host' },
        ],
      }),
    );
    const repo = await git.addRepo('packed', { 'README.md': 'packed\n' });
    // Whatever happens to the test, this daemon's containers and secrets go once cleanup has killed it,
    // and the run's teardown checks that none was left.
    const objects = instanceSecretPrefix(instanceIdOf(socket, join(dir, 'state')));
    recordInstance(objects);
    track.onCleanup(() => removeInstanceObjects(objects));
    const daemon = track.process(
      spawn(agentd, ['start', '--config', config, '--log-format', 'pretty'], {
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: cleanEnv(),
      }),
    );
    let log = '';
    daemon.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
    });
    // 'close', not 'exit': its stderr is read to the end by then.
    const exited = new Promise<number | null>((resolve) => daemon.once('close', (code) => resolve(code)));
    const deadline = Date.now() + 60_000;
    while (!log.includes('agentd is ready')) {
      if (daemon.exitCode !== null || Date.now() > deadline)
        throw new Error(`daemon did not get ready:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // Pretty lines, not JSON.
    expect(log).toMatch(/INFO.*: agentd is ready/);
    expect(log).not.toMatch(/^\{"level"/m);

    const env = cleanEnv({ AGENTD_SOCKET: socket });
    const trigger = await execa(agentd, ['trigger', 'packed', repo, '--timeout', '1m'], {
      env,
      reject: false,
    });
    expect(trigger.exitCode, trigger.stderr).toBe(0);
    expect(trigger.stdout).toContain('packed-ok');
    // Socket clients run without NODE_EXTRA_CA_CERTS (bin/agentd): Node never sees the file.
    const quick = await execa(agentd, ['trigger', 'packed', repo, '--quiet'], {
      env: { ...env, NODE_EXTRA_CA_CERTS: '/nonexistent/agentd-ca.pem' },
      reject: false,
    });
    expect(quick.exitCode, quick.stderr).toBe(0);
    expect(quick.stdout).toMatch(/ succeeded/);
    expect(quick.stderr).not.toContain('extra certs');
    const status = await execa(agentd, ['status'], { env });
    expect(status.stdout).toMatch(new RegExp(`^agentd ${VERSION.replace(/\./g, '\\.')}: ready`));

    daemon.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(log).toContain('agentd stopped');
    const instance = /instanceId: "([0-9a-f]+)"/.exec(log)?.[1];
    expect(instance, log).toBeDefined();
    const objectPrefix = `agentd-${(instance as string).slice(0, 8)}-`;
    expect(await listAgentdContainers(objectPrefix)).toEqual([]);
    expect(await listSecrets(objectPrefix)).toEqual([]);
  }, 120_000);
});
