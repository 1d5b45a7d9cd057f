/**
 * Work in, results out, end to end: the real daemon, the real CLI, real Podman and a git server on
 * 127.0.0.1. What a trigger hands the agent (request, inputs), what the agent's configuration mounts
 * (mounts, context, caches), and what the session leaves behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { execa, execaSync } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import type { OutputSummary } from '../../src/adapters/sealed-records.js';
import { cacheVolumeName } from '../../src/runner/names.js';
import {
  CLI,
  gitAndGate,
  launchDaemon,
  leftoversAfterCleanup,
  runCli,
  startDaemon,
  writeDaemonConfig,
} from '../helpers/daemon.js';
import { listAgentdContainers, listVolumes, TEST_IMAGE } from '../helpers/podman.js';
import { endProcessGroup, makeTempDir } from '../helpers/resources.js';

const { git, gate, agent: agentRunning } = gitAndGate();

afterEach(async () => {
  expect(await leftoversAfterCleanup(), 'podman objects the test daemons left behind').toEqual([]);
});

function agent(name: string, script: string, extra: Record<string, unknown> = {}) {
  return agentRunning(name, ['sh', '-c', script], extra);
}

/** Blocks the command until the test opens the gate. */
function waitAtGate(): string {
  return `git ls-remote git://127.0.0.1:${gate.port}/gate.git >/dev/null 2>&1`;
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Every process's argv on this host, as text (what `ps` and /proc show anyone). */
function allCommandLines(): string {
  const out: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      out.push(readFileSync(`/proc/${pid}/cmdline`).toString('latin1'));
    } catch {
      // Gone meanwhile.
    }
  }
  return out.join('\n');
}

describe('the request and input files', () => {
  it('arrive byte-exact and read-only, and never show in an argv or podman inspect', async () => {
    const token = `REQ-${randomBytes(8).toString('hex')}`;
    // Newlines, quotes, shell syntax, bytes that are not UTF-8, and 100 KB of it.
    const head = Buffer.from(`${token}\nline "two" 'three' $(rm -rf /) \`x\` \\ \r\n\u00e9`);
    const binary = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 10]);
    const filler = Buffer.from(`${'lorem ipsum '.repeat(8)}\n`.repeat(1100));
    const request = Buffer.concat([head, binary, filler]);
    expect(request.byteLength).toBeGreaterThan(100_000);
    const dir = makeTempDir('agentd-e2e-work-');
    const requestFile = join(dir, 'request.txt');
    writeFileSync(requestFile, request);
    const spec = Buffer.concat([Buffer.from('spec\n'), randomBytes(3000)]);
    writeFileSync(join(dir, 'spec.bin'), spec);
    writeFileSync(join(dir, 'notes.md'), '# notes\n');

    const d = await startDaemon({
      agents: [
        agent(
          'reader',
          [
            'echo "request $AGENTD_REQUEST_FILE $(sha256sum < "$AGENTD_REQUEST_FILE" | cut -c1-64) $(wc -c < "$AGENTD_REQUEST_FILE")"',
            'echo "input $AGENTD_INPUT_DIR $(ls "$AGENTD_INPUT_DIR" | tr "\\n" " ")"',
            'echo "spec $(sha256sum < "$AGENTD_INPUT_DIR/spec" | cut -c1-64)"',
            'echo x >> "$AGENTD_REQUEST_FILE" 2>/dev/null || echo "request not writable"',
            'echo x >> "$AGENTD_INPUT_DIR/spec" 2>/dev/null || echo "input not writable"',
            'touch "$AGENTD_INPUT_DIR/new" 2>/dev/null || echo "input dir not writable"',
            'env | grep -c "^AGENTD_REQUEST=" || :',
            waitAtGate(),
            'echo released',
          ].join('\n'),
        ),
      ],
    });
    gate.hold();
    const run = d.spawnCli([
      'trigger',
      'reader',
      '--request-file',
      requestFile,
      '--input',
      `spec=${join(dir, 'spec.bin')}`,
      '--input',
      `notes.md=${join(dir, 'notes.md')}`,
    ]);
    await gate.waitFor(1);
    // While it runs: the request is in no process's argv on this host, and not in the container's config.
    expect(allCommandLines()).not.toContain(token);
    const [container] = await listAgentdContainers(d.prefix);
    const inspect = await execa('podman', ['container', 'inspect', container?.name ?? '?']);
    expect(inspect.stdout).toContain('/agentd/request');
    expect(inspect.stdout).not.toContain(token);
    gate.open();
    const result = await run.result;
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain(`request /agentd/request ${sha256(request)} ${request.byteLength}`);
    expect(result.stdout).toContain('input /agentd/input notes.md spec ');
    expect(result.stdout).toContain(`spec ${sha256(spec)}`);
    expect(result.stdout).toContain('request not writable');
    expect(result.stdout).toContain('input not writable');
    expect(result.stdout).toContain('input dir not writable');
    expect(result.stdout).not.toContain(token);
    // Nothing of the session is left in the state dir's work area.
    const work = join(d.files.stateDir, 'work');
    expect(readdirSync(work).map((id) => [id, ...readdirSync(join(work, id))])).toEqual([]);
  });

  it('refuses an oversized request or a bad input name as a usage error, before anything runs', async () => {
    const d = await startDaemon({ agents: [agent('reader', 'true')] });
    const dir = makeTempDir('agentd-e2e-work-');
    writeFileSync(join(dir, 'big'), Buffer.alloc(1024 * 1024 + 1, 0x61));
    const big = await d.cli(['trigger', 'reader', '--request-file', join(dir, 'big')]);
    expect(big.code).toBe(2);
    expect(big.stderr).toContain('--request-file');
    expect(big.stderr).toContain('1 MiB');
    const bad = await d.cli(['trigger', 'reader', '--input', `../x=${join(dir, 'big')}`]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('is not a file name');
    // A client that skips the CLI's checks is refused by the daemon, with a reason.
    const raw = await d.request({
      type: 'trigger',
      agent: 'reader',
      inputs: [{ name: '..', data: Buffer.from('x').toString('base64') }],
    });
    expect(raw).toMatchObject({ type: 'rejected', code: 'bad_input' });
    expect(readdirSync(join(d.files.stateDir, 'work'))).toEqual([]);
  });
});

describe('mounts, context and caches', () => {
  it('mounts read-only by default and read-write when asked, and the context read-only', async () => {
    const dir = makeTempDir('agentd-e2e-mounts-');
    const data = join(dir, 'data');
    const scratch = join(dir, 'scratch');
    const context = join(dir, 'context');
    for (const d of [data, scratch, context]) mkdirSync(d);
    writeFileSync(join(data, 'in.txt'), 'from the host\n');
    writeFileSync(join(context, 'method.md'), 'the method\n');
    // The agent's user writes as itself (uid 61000): the host dir must let it.
    chmodSync(scratch, 0o777);
    const d = await startDaemon({
      agents: [
        agent(
          'mounter',
          [
            'cat /data/in.txt',
            'echo x > /data/new 2>/dev/null || echo "data not writable"',
            'echo "written by $(id -un)" > /scratch/out.txt && echo "scratch writable"',
            'echo "context $AGENTD_CONTEXT_DIR: $(cat "$AGENTD_CONTEXT_DIR/method.md")"',
            'echo x > "$AGENTD_CONTEXT_DIR/new" 2>/dev/null || echo "context not writable"',
          ].join('\n'),
          {
            mounts: [
              { source: data, target: '/data' },
              { source: scratch, target: '/scratch', read_only: false },
            ],
            context,
          },
        ),
      ],
    });
    const result = await d.cli(['trigger', 'mounter']);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain('from the host');
    expect(result.stdout).toContain('data not writable');
    expect(result.stdout).toContain('scratch writable');
    expect(result.stdout).toContain('context /agentd/context: the method');
    expect(result.stdout).toContain('context not writable');
    expect(readFileSync(join(scratch, 'out.txt'), 'utf8')).toBe('written by mounter\n');
    expect(readdirSync(data)).toEqual(['in.txt']);
  });

  it('keeps a cache between sessions, owned by the agent, through a restart and reconciliation', async () => {
    const script = [
      'c="$HOME/.cache/npm"',
      'echo "cache owner $(stat -c %U "$c") parent $(stat -c %U "$HOME/.cache")"',
      'echo "before: $(cat "$c/marker" 2>/dev/null || echo none)"',
      'echo "$AGENTD_SESSION_ID" >> "$c/marker"',
    ].join('\n');
    const first = await startDaemon({
      agents: [agent('cacher', script, { caches: { npm: '/home/cacher/.cache/npm' } })],
    });
    const one = await first.cli(['trigger', 'cacher']);
    expect(one.code, one.stdout + one.stderr).toBe(0);
    expect(one.stdout).toContain('cache owner cacher parent cacher');
    expect(one.stdout).toContain('before: none');
    const volume = cacheVolumeName(first.instanceId, 'cacher', 'npm');
    expect(await listVolumes(first.prefix)).toEqual([volume]);
    const labels = await execa('podman', ['volume', 'inspect', volume, '--format', '{{json .Labels}}']);
    expect(JSON.parse(labels.stdout)).toMatchObject({
      'io.agentd.instance': first.instanceId,
      'io.agentd.agent': 'cacher',
      'io.agentd.cache': 'npm',
    });
    await first.stop();

    // A new daemon of the same instance reconciles (removes what the last one left) and keeps the cache.
    const second = launchDaemon(first.files);
    await second.ready();
    expect(await listVolumes(first.prefix)).toEqual([volume]);
    const two = await second.cli(['trigger', 'cacher']);
    expect(two.code, two.stdout + two.stderr).toBe(0);
    expect(two.stdout).toMatch(/before: [0-9a-f]{16}/);
    expect(two.stdout).toContain('cache owner cacher parent cacher');
  });

  it('runs no git config or hook an earlier session left in a cache while it clones', async () => {
    // Session one (perhaps prompt-injected) leaves a git config in a cache at ~/.config that points git
    // at its own hooks; were they run by the next session's clone, they would see the repo token and the
    // setup step's marker (and could forge the commit it reports).
    const script = [
      'if [ -f "$HOME/.config/hook-env" ]; then echo "the hook ran"; else echo "no hook ran"; fi',
      'mkdir -p "$HOME/.config/git" "$HOME/.config/hooks"',
      'printf "[core]\\n\\thooksPath = %s\\n" "$HOME/.config/hooks" > "$HOME/.config/git/config"',
      'printf "#!/bin/sh\\nenv > \\"\\$HOME/.config/hook-env\\"\\n" > "$HOME/.config/hooks/post-checkout"',
      'chmod +x "$HOME/.config/hooks/post-checkout"',
      // The agent's own git still reads its config: only the setup step's git calls leave it out.
      'git config --global --get core.hooksPath',
    ].join('\n');
    const daemon = await startDaemon({
      agents: [agent('hooked', script, { caches: { config: '/home/hooked/.config' } })],
    });
    const one = await daemon.cli(['trigger', 'hooked']);
    expect(one.code, one.stdout + one.stderr).toBe(0);
    expect(one.stdout).toContain('no hook ran');
    expect(one.stdout).toContain('/home/hooked/.config/hooks');
    // The clone of session two is where the hook would run (writing hook-env before the command starts).
    const two = await daemon.cli(['trigger', 'hooked']);
    expect(two.code, two.stdout + two.stderr).toBe(0);
    expect(two.stdout).toContain('no hook ran');
  });

  it('never hands one agent a cache volume made for another agent’s cache', async () => {
    // An earlier configuration's agent "taker-x" with a cache "npm" made the volume that agent "taker"
    // with a cache "x-npm" would use now (the same name): its sessions must not get what the other left.
    const daemon = await startDaemon({
      agents: [
        agent('taker', 'echo "cache: $(ls -A /home/taker/.cache/x 2>/dev/null)"', {
          caches: { 'x-npm': '/home/taker/.cache/x' },
        }),
      ],
    });
    const volume = cacheVolumeName(daemon.instanceId, 'taker', 'x-npm');
    expect(volume).toBe(cacheVolumeName(daemon.instanceId, 'taker-x', 'npm'));
    const labels = [
      'io.agentd.instance',
      daemon.instanceId,
      'io.agentd.agent',
      'taker-x',
      'io.agentd.cache',
      'npm',
    ];
    const labelArgs = [0, 2, 4].flatMap((i) => ['--label', `${labels[i]}=${labels[i + 1]}`]);
    await execa('podman', ['volume', 'create', ...labelArgs, volume]);
    try {
      const run = await daemon.cli(['trigger', 'taker']);
      expect(run.code, run.stdout + run.stderr).toBe(4);
      expect(run.stdout + run.stderr).toContain(
        `cache volume ${volume} was made for agent taker-x's cache npm`,
      );
      expect(run.stdout + run.stderr).toContain(`podman volume rm ${volume}`);
      expect(run.stdout).not.toContain('cache:');
      expect(await listAgentdContainers(daemon.prefix)).toEqual([]);
    } finally {
      await execa('podman', ['volume', 'rm', '-f', volume], { reject: false });
    }
  });

  it('runs the setup step’s tools from the system’s directories, not from a cache on the image’s PATH', async () => {
    // An image whose PATH starts with a directory a cache holds (as /opt/conda/bin does): what one session
    // leaves there must not run as root in the next session's setup step (which reads the credentials).
    const tag = randomBytes(4).toString('hex');
    const image = `localhost/agentd-test-path:${tag}`;
    const imagePath = '/opt/tools/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
    const base = `pathimg-${tag}`;
    // Without gosu: the step falls back to setpriv, and must not take a gosu the cache holds instead.
    // In the try: a `podman run` that fails leaves its exited container, which no instance prefix names.
    try {
      await execa('podman', ['run', '--name', base, TEST_IMAGE, 'rm', '-f', '/usr/sbin/gosu']);
      await execa('podman', ['commit', '--quiet', '--change', `ENV PATH=${imagePath}`, base, image]);
    } finally {
      await execa('podman', ['rm', '-f', base], { reject: false });
    }
    try {
      const script = [
        'echo "path=$PATH"',
        'mkdir -p /opt/tools/bin',
        'for t in head tail cat id env git cp stat; do',
        // Root without capabilities cannot write into the agent's cache: the evidence goes to the output.
        `  printf '#!/bin/sh\\necho "planted %s ran as $(/usr/bin/id -u)" >&2\\nexec /usr/bin/%s "$@"\\n' "$t" "$t" > /opt/tools/bin/$t`,
        '  chmod +x /opt/tools/bin/$t',
        'done',
        // A gosu that works (so a session that ran it would go on) and says it ran.
        `printf '#!/bin/sh\\necho "planted gosu ran as $(/usr/bin/id -u)" >&2\\nu=$1; shift\\nexec /usr/bin/setpriv --reuid=$u --regid=$u --init-groups "$@"\\n' > /opt/tools/bin/gosu`,
        'chmod +x /opt/tools/bin/gosu',
        // What the agent runs itself finds them (the check below can fail).
        'head -c 0 /dev/null',
      ].join('\n');
      const daemon = await startDaemon(
        {
          agents: [
            {
              ...agent('pather', script, { caches: { tools: '/opt/tools' } }),
              image,
              credentials: [{ name: 'TOOL_TOKEN', source: 'env:AGENTD_E2E_PATH_CRED' }],
            },
          ],
        },
        { env: { AGENTD_E2E_PATH_CRED: 'path-credential-value' } },
      );
      const one = await daemon.cli(['trigger', 'pather']);
      expect(one.code, one.stdout + one.stderr).toBe(0);
      // The command gets the image's PATH as it is.
      expect(one.stdout).toContain(`path=${imagePath}`);
      const two = await daemon.cli(['trigger', 'pather']);
      expect(two.code, two.stdout + two.stderr).toBe(0);
      // Nothing planted ran as root (the clone and the command run as the agent’s user, uid 61000).
      expect(two.stdout + two.stderr).toMatch(/planted head ran as [1-9]/);
      expect(two.stdout + two.stderr).not.toMatch(/planted \w+ ran as 0/);
    } finally {
      await execa('podman', ['rmi', '-f', image], { reject: false });
    }
  });

  it('never runs a drop tool the agent can replace (gosu in a /usr/local/bin its user may write)', async () => {
    // An image that put gosu in a /usr/local/bin anyone may write (as images that hand /usr/local to the
    // agent's user do): the step must not take it, or root runs the agent's replacement when it archives
    // the output after the command.
    const tag = randomBytes(4).toString('hex');
    const image = `localhost/agentd-test-gosu:${tag}`;
    const base = `gosuimg-${tag}`;
    try {
      await execa('podman', [
        'run',
        '--name',
        base,
        TEST_IMAGE,
        'sh',
        '-c',
        'mv /usr/sbin/gosu /usr/local/bin/gosu && chmod 0777 /usr/local/bin',
      ]);
      await execa('podman', ['commit', '--quiet', base, image]);
    } finally {
      await execa('podman', ['rm', '-f', base], { reject: false });
    }
    try {
      const script = [
        'echo kept > "$AGENTD_OUTPUT_DIR/result.txt"',
        // The replacement makes the archive itself: evidence of who ran it, in the sealed record.
        `printf '#!/bin/sh\nmkdir -p /tmp/ev && : > /tmp/ev/planted-ran-as-$(/usr/bin/id -u)\nexec /usr/bin/tar -cf - -C /tmp/ev .\n' > /usr/local/bin/gosu.new`,
        'chmod 0755 /usr/local/bin/gosu.new && mv -f /usr/local/bin/gosu.new /usr/local/bin/gosu',
        'echo replaced',
      ].join('\n');
      const d = await startDaemon({ agents: [{ ...agent('gosuer', script), image }] });
      const result = await d.cli(['trigger', 'gosuer', '--json']);
      const reply = JSON.parse(result.stdout) as { sessionId: string; outcome: string };
      expect(reply.outcome, result.stdout + result.stderr).toBe('succeeded');
      const record = d.records().find((r) => r.id === reply.sessionId) as unknown as SessionJson;
      const out = join(record.recordDir as string, 'out');
      expect(readdirSync(out)).toEqual(['result.txt']);
    } finally {
      await execa('podman', ['rmi', '-f', image], { reject: false });
    }
  });

  // A bounded cache is loop-mounted: a machine without loop devices cannot have one (README says so).
  const loops = execaSync('losetup', ['--find'], { reject: false });
  it.skipIf(loops.exitCode !== 0)(
    'bounds a cache with resources.cache: full at its size, on the host at most that; a new size needs a new cache',
    async () => {
      const c = '/home/bounded/.cache/big';
      const script = [
        `echo "size $(df -k ${c} | tail -1 | awk '{print $2}')"`,
        `dd if=/dev/zero of=${c}/fill bs=1M count=64 2>&1 | grep -o "No space left on device" | head -1`,
        `echo "kept $(( $(stat -c %s ${c}/fill) / 1048576 ))m"`,
        `rm -f ${c}/fill`,
      ].join('\n');
      const config = (cache: string) => ({
        agents: [agent('bounded', script, { caches: { big: c }, resources: { cache } })],
      });
      const first = await startDaemon(config('16m'));
      const volume = cacheVolumeName(first.instanceId, 'bounded', 'big');
      const file = join(first.files.stateDir, 'caches', 'local', `${volume}.ext4`);
      const one = await first.cli(['trigger', 'bounded']);
      expect(one.code, one.stdout + one.stderr).toBe(0);
      expect(one.stdout).toContain('No space left on device');
      const size = Number(/size (\d+)/.exec(one.stdout)?.[1]);
      expect(size).toBeGreaterThan(10 * 1024);
      expect(size).toBeLessThanOrEqual(16 * 1024);
      expect(Number(/kept (\d+)m/.exec(one.stdout)?.[1])).toBeLessThanOrEqual(16);
      // The filesystem's file: 16 MiB, reserved on the host's disk when made (whatever the agent
      // writes, no more), root-only.
      const stat = statSync(file);
      expect(stat.size).toBe(16 * 1024 * 1024);
      expect(stat.blocks * 512).toBeGreaterThanOrEqual(16 * 1024 * 1024);
      expect(stat.blocks * 512).toBeLessThanOrEqual(17 * 1024 * 1024);
      expect(stat.mode & 0o077).toBe(0);
      const options = await execa('podman', ['volume', 'inspect', volume, '--format', '{{json .Options}}']);
      expect(JSON.parse(options.stdout)).toMatchObject({ device: file, type: 'ext4' });
      // No loop device is left holding it once the session's container is gone.
      const loops = await execa('losetup', ['-a'], { reject: false });
      expect(loops.stdout).not.toContain(file);
      await first.stop();

      // A new size does not silently keep the old one: the session fails saying how to apply it.
      writeDaemonConfig(first.files, config('32m'));
      const second = launchDaemon(first.files);
      await second.ready();
      const refused = await second.cli(['trigger', 'bounded']);
      expect(refused.code).not.toBe(0);
      expect(refused.stdout + refused.stderr).toContain(
        `cache volume ${volume} was made with a size of 16m, and resources.cache now says 32m`,
      );
      expect(refused.stdout + refused.stderr).toContain(`podman volume rm ${volume}`);
      await execa('podman', ['volume', 'rm', volume]);
      const three = await second.cli(['trigger', 'bounded']);
      expect(three.code, three.stdout + three.stderr).toBe(0);
      expect(Number(/size (\d+)/.exec(three.stdout)?.[1])).toBeGreaterThan(16 * 1024);
      expect(statSync(file).size).toBe(32 * 1024 * 1024);
      // Removed while the daemon runs: made anew with its bound, not as the plain volume Podman would make.
      await execa('podman', ['volume', 'rm', volume]);
      const four = await second.cli(['trigger', 'bounded']);
      expect(four.code, four.stdout + four.stderr).toBe(0);
      expect(four.stdout).toContain('No space left on device');
      const again = await execa('podman', ['volume', 'inspect', volume, '--format', '{{json .Options}}']);
      expect(JSON.parse(again.stdout)).toMatchObject({ device: file, type: 'ext4' });
      await second.stop();

      // The operator removes the cache: the next start removes its file (and a make cut short).
      await execa('podman', ['volume', 'rm', volume]);
      writeFileSync(`${file}.999.tmp`, 'partial');
      const third = launchDaemon(first.files);
      await third.ready();
      expect(readdirSync(join(first.files.stateDir, 'caches', 'local'))).toEqual([]);
    },
  );

  it('rejects overlapping mounts and relative paths in validate, with their lines', async () => {
    const dir = makeTempDir('agentd-e2e-validate-');
    mkdirSync(join(dir, 'data'));
    const file = join(dir, 'agentd.yaml');
    writeFileSync(
      file,
      `agents:
  - name: m
    image: ${TEST_IMAGE}
    command: ["true"]
    mounts:
      - source: ${join(dir, 'data')}
        target: /data
      - source: ${join(dir, 'data')}
        target: /data/sub
      - source: data
        target: /other
    context: ./ctx
`,
    );
    const result = await runCli(['validate', '--config', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      'agents[0].mounts[1].target (line 9, col 17): "/data/sub" overlaps mounts[0] ("/data")',
    );
    expect(result.stderr).toContain(
      'agents[0].mounts[2].source (line 10, col 17): "data" is a relative path',
    );
    expect(result.stderr).toContain('agents[0].context (line 12, col 14): "./ctx" is a relative path');
  });
});

/** Every path under dir with its type and mode, e.g. `out/a/b.txt file 444`. */
function tree(dir: string, prefix = ''): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      const stat = lstatSync(path);
      const line = `${prefix}${name} ${stat.isDirectory() ? 'dir' : stat.isFile() ? 'file' : 'other'} ${(stat.mode & 0o777).toString(8)}`;
      return stat.isDirectory() ? [line, ...tree(path, `${prefix}${name}/`)] : [line];
    });
}

interface SessionJson {
  id: string;
  agent: string;
  image?: string;
  imageId?: string;
  imageDigest?: string;
  repo: string;
  commit?: string;
  workUnit?: string;
  request?: { bytes: number; sha256: string };
  inputs?: { name: string; bytes: number; sha256: string }[];
  outcome?: string;
  exitCode?: number;
  timings?: Record<string, number>;
  output?: OutputSummary;
  startedAt?: string;
  finishedAt?: string;
  recordDir?: string;
}

const WRITE_OUTPUT = [
  'mkdir -p "$AGENTD_OUTPUT_DIR/report/deep"',
  'echo "summary of $AGENTD_SESSION_ID" > "$AGENTD_OUTPUT_DIR/summary.txt"',
  'echo nested > "$AGENTD_OUTPUT_DIR/report/deep/result.json"',
  'ln -s /etc/shadow "$AGENTD_OUTPUT_DIR/link"',
].join('\n');

/** The sealed record of a session that ran WRITE_OUTPUT: the link is left out, everything read-only. */
const SEALED_OUTPUT = [
  'out dir 555',
  'out/report dir 555',
  'out/report/deep dir 555',
  'out/report/deep/result.json file 444',
  'out/summary.txt file 444',
  'session.json file 444',
  'session.log file 444',
];

describe('results out: the output directory and the sealed record', () => {
  it.each([
    ['succeeded', `${WRITE_OUTPUT}\nexit 0`, 'succeeded', {}],
    ['failed', `${WRITE_OUTPUT}\nexit 5`, 'failed', {}],
    // It ignores SIGTERM: the setup step kills it at the end of stop_grace and still archives its output.
    // The deadline runs from the session's start: long enough for creating and cloning on a loaded machine.
    ['timed out', `${WRITE_OUTPUT}\ntrap "" TERM\nwhile :; do sleep 1; done`, 'timed_out', { timeout: '8s' }],
  ] as const)(
    'keeps nested output files of a session that %s, sealed read-only',
    async (_, script, outcome, extra) => {
      const secret = `s3cr3t-${randomBytes(6).toString('hex')}`;
      const d = await startDaemon(
        {
          agents: [
            agent('writer', script, {
              credentials: [{ name: 'API_KEY', source: 'env:WRITER_KEY' }],
              ...extra,
            }),
          ],
        },
        { env: { WRITER_KEY: secret } },
      );
      const result = await d.cli([
        'trigger',
        'writer',
        '--json',
        '--request',
        'do the thing',
        '--work-unit',
        'W-7',
      ]);
      const reply = JSON.parse(result.stdout) as { sessionId: string; outcome: string };
      expect(reply.outcome, result.stdout + result.stderr).toBe(outcome);
      const [record] = d.records().filter((r) => r.id === reply.sessionId) as unknown as SessionJson[];
      const dir = record?.recordDir ?? '';
      expect(dir).toBe(join(d.files.stateDir, 'records', 'writer', reply.sessionId));
      expect(tree(dir)).toEqual(SEALED_OUTPUT);
      expect((lstatSync(dir).mode & 0o777).toString(8)).toBe('555');
      expect(readFileSync(join(dir, 'out/summary.txt'), 'utf8')).toBe(`summary of ${reply.sessionId}\n`);
      const text = readFileSync(join(dir, 'session.json'), 'utf8');
      expect(text).not.toContain(secret);
      const json = JSON.parse(text) as SessionJson;
      const { stdout: head } = await execa('git', ['-C', join(git.dir, 'repo.git'), 'rev-parse', 'HEAD']);
      const { stdout: digest } = await execa('podman', [
        'image',
        'inspect',
        TEST_IMAGE,
        '--format',
        '{{.Digest}}',
      ]);
      expect(json).toMatchObject({
        id: reply.sessionId,
        agent: 'writer',
        image: TEST_IMAGE,
        imageDigest: digest,
        repo: git.url(),
        commit: head,
        workUnit: 'W-7',
        request: { bytes: 12, sha256: sha256(Buffer.from('do the thing')) },
        outcome,
        output: { files: 2, truncated: false, skipped: 1 },
      });
      // A whole archive, as tar makes it: nothing missing or damaged.
      expect(json.output?.missing).toBeUndefined();
      expect(json.output?.damaged).toBeUndefined();
      expect(json.startedAt).toBeDefined();
      expect(json.finishedAt).toBeDefined();
      expect(Object.keys(json.timings ?? {})).toEqual(
        expect.arrayContaining(['creating', 'cloning', 'running']),
      );
      expect(readFileSync(join(dir, 'session.log'), 'utf8')).not.toContain(secret);
    },
  );

  it('leaves nothing in the daemon’s working directory nor its state dir when an agent is killed for memory', async () => {
    // Podman 4.3's conmon writes a file named `oom` where podman runs: the daemon runs it in its state
    // dir, and deletes the file once the container is removed.
    const cwd = makeTempDir('agentd-e2e-cwd-');
    const script = 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo "$x" | wc -c';
    const d = await startDaemon(
      { agents: [agent('hog', script, { resources: { memory: '64m' } })] },
      { cwd },
    );
    const result = await d.cli(['trigger', 'hog', '--json']);
    const reply = JSON.parse(result.stdout) as { outcome: string; message?: string };
    expect(reply.outcome, result.stdout + result.stderr).toBe('failed');
    expect(reply.message).toMatch(/out of memory/);
    expect(readdirSync(cwd)).toEqual([]);
    expect(readdirSync(d.files.stateDir)).not.toContain('oom');
  });

  it("archives the output although the command's left-over processes hold every pid", async () => {
    // A fork bomb left running in the background fills the pids limit; the command then ends. The
    // archive needs forks: the setup step stops what the agent left first.
    const script = [
      'echo kept > "$AGENTD_OUTPUT_DIR/result.txt"',
      "bash -c 'b() { b | b & }; b' >/dev/null 2>&1 &",
      'exec sleep 4',
    ].join('\n');
    const d = await startDaemon({ agents: [agent('bomber', script, { resources: { pids: 64 } })] });
    const result = await d.cli(['trigger', 'bomber', '--json']);
    const reply = JSON.parse(result.stdout) as { sessionId: string; outcome: string };
    expect(reply.outcome, result.stdout + result.stderr).toBe('succeeded');
    const record = d.records().find((r) => r.id === reply.sessionId) as unknown as SessionJson;
    expect(record.output).toMatchObject({ files: 1, truncated: false });
    expect(readFileSync(join(record.recordDir as string, 'out', 'result.txt'), 'utf8')).toBe('kept\n');
  });

  it('archives the output of a stopped command that ignores SIGTERM while its processes hold every pid', async () => {
    // The stop's grace period must end without a fork: nothing is left to fork with. Before, the
    // grace timer forked `sleep`, failed, and the command ran on until Podman's SIGKILL took the output.
    const script = [
      'echo kept > "$AGENTD_OUTPUT_DIR/result.txt"',
      'trap "" TERM',
      "bash -c 'b() { b | b & }; b' >/dev/null 2>&1 &",
      'exec sleep 600',
    ].join('\n');
    const d = await startDaemon({
      agents: [agent('stubborn-bomber', script, { resources: { pids: 64 }, timeout: '8s' })],
    });
    const result = await d.cli(['trigger', 'stubborn-bomber', '--json']);
    const reply = JSON.parse(result.stdout) as { sessionId: string; outcome: string };
    expect(reply.outcome, result.stdout + result.stderr).toBe('timed_out');
    const record = d.records().find((r) => r.id === reply.sessionId) as unknown as SessionJson;
    expect(record.output).toMatchObject({ files: 1, truncated: false });
    expect(record.output?.missing).toBeUndefined();
    expect(readFileSync(join(record.recordDir as string, 'out', 'result.txt'), 'utf8')).toBe('kept\n');
  });

  it('seals the record of a session whose archive is cut at its bound, with what came before the cut', async () => {
    // A sparse file takes nothing of the tmpfs but archives as 8 MiB of zeros: the archive is cut
    // inside it, past the 1.25 MiB bound of a 1m output.
    const script = 'truncate -s 8m "$AGENTD_OUTPUT_DIR/sparse"';
    const d = await startDaemon({ agents: [agent('sparse', script, { resources: { output: '1m' } })] });
    const result = await d.cli(['trigger', 'sparse', '--json']);
    const reply = JSON.parse(result.stdout) as { sessionId: string; outcome: string };
    expect(reply.outcome, result.stdout + result.stderr).toBe('succeeded');
    const record = d.records().find((r) => r.id === reply.sessionId) as unknown as SessionJson;
    expect(record.output).toMatchObject({ truncated: true });
    const dir = record.recordDir as string;
    expect((lstatSync(dir).mode & 0o777).toString(8)).toBe('555');
    expect(readdirSync(dir).sort()).toEqual(['out', 'session.json', 'session.log']);
    expect(d.logs().filter((l) => l.event === 'session.record_unwritten')).toEqual([]);
    const shown = await d.cli(['show', reply.sessionId]);
    expect(shown.stdout).toContain('cut at its bound');
  });

  it('keeps both names of a file the agent linked in its output, and nothing a link points at outside it', async () => {
    // tar archives the second name of a file as a hard link to the first: that link was left out.
    const script = [
      'cd "$AGENTD_OUTPUT_DIR"',
      'echo "the report" > report.md',
      'ln report.md latest.md',
      'ln -s /etc/passwd passwd',
    ].join('\n');
    const d = await startDaemon({ agents: [agent('linker', script)] });
    const result = await d.cli(['trigger', 'linker', '--json']);
    const reply = JSON.parse(result.stdout) as { sessionId: string; outcome: string };
    expect(reply.outcome, result.stdout + result.stderr).toBe('succeeded');
    const record = d.records().find((r) => r.id === reply.sessionId) as unknown as SessionJson;
    expect(record.output).toMatchObject({ files: 2, skipped: 1 });
    const out = join(record.recordDir as string, 'out');
    expect(readdirSync(out).sort()).toEqual(['latest.md', 'report.md']);
    for (const name of ['latest.md', 'report.md']) {
      expect(readFileSync(join(out, name), 'utf8')).toBe('the report\n');
    }
  });

  it('keeps what the agent made unreadable to itself in its output (mode 000)', async () => {
    const script = [
      'cd "$AGENTD_OUTPUT_DIR"',
      'echo kept > locked.txt',
      'mkdir -p shut/inner && echo deep > shut/inner/deep.txt',
      'chmod 000 locked.txt shut/inner shut',
    ].join('\n');
    const d = await startDaemon({ agents: [agent('locker', script)] });
    const result = await d.cli(['trigger', 'locker', '--json']);
    const reply = JSON.parse(result.stdout) as { sessionId: string; outcome: string };
    expect(reply.outcome, result.stdout + result.stderr).toBe('succeeded');
    const record = d.records().find((r) => r.id === reply.sessionId) as unknown as SessionJson;
    expect(record.output).toMatchObject({ files: 2, skipped: 0 });
    const out = join(record.recordDir as string, 'out');
    expect(readFileSync(join(out, 'locked.txt'), 'utf8')).toBe('kept\n');
    expect(readFileSync(join(out, 'shut', 'inner', 'deep.txt'), 'utf8')).toBe('deep\n');
  });

  it('keeps what was archived of an output whose archiving the stop cut short, and says so', async () => {
    // At 3 % of a CPU, archiving 600 MB (tar, head and the write, some three times the CPU of writing it)
    // takes far longer than the 5 s between the grace period and Podman's SIGKILL, while writing it stays
    // well inside the timeout: before, the part the setup step was writing was dropped, and with it the
    // output. At a tenth of a CPU a fast machine archived it whole within the 5 s (CI, 2026-12-06).
    const script = [
      'head -c 600000000 /dev/zero > "$AGENTD_OUTPUT_DIR/big"',
      'echo written',
      'exec sleep 600',
    ].join('\n');
    const d = await startDaemon({
      agents: [
        agent('slow-archive', script, {
          timeout: '40s',
          resources: { output: '1g', memory: '2g', cpus: 0.03 },
        }),
      ],
    });
    const result = await d.cli(['trigger', 'slow-archive', '--json']);
    const reply = JSON.parse(result.stdout) as { sessionId: string; outcome: string };
    expect(reply.outcome, result.stdout + result.stderr).toBe('timed_out');
    expect((await d.cli(['logs', reply.sessionId])).stdout).toContain('written');
    const record = d.records().find((r) => r.id === reply.sessionId) as unknown as SessionJson;
    expect(record.output?.missing).toBeUndefined();
    expect(record.output?.damaged).toMatch(/^the session was stopped before its output was archived whole/);
    expect(record.output?.files).toBe(1);
    expect(readdirSync(join(d.files.stateDir, 'work'))).toEqual([]);
  });

  it('withholds the output of a session that left a credential value in it, and says why', async () => {
    const secret = `s3cr3t-${randomBytes(6).toString('hex')}`;
    const script = [
      'echo fine > "$AGENTD_OUTPUT_DIR/report.txt"',
      'printf %s "$API_KEY" | base64 > "$AGENTD_OUTPUT_DIR/key.b64"',
    ].join('\n');
    const d = await startDaemon(
      { agents: [agent('leaker', script, { credentials: [{ name: 'API_KEY', source: 'env:LEAK_KEY' }] })] },
      { env: { LEAK_KEY: secret } },
    );
    const result = await d.cli(['trigger', 'leaker', '--json']);
    const reply = JSON.parse(result.stdout) as { sessionId: string; outcome: string };
    expect(reply.outcome, result.stdout + result.stderr).toBe('succeeded');
    const record = d.records().find((r) => r.id === reply.sessionId) as unknown as SessionJson;
    expect(record.output).toMatchObject({ files: 0 });
    expect(record.output?.missing).toMatch(/^withheld: a file in \/agentd\/out held a credential value/);
    expect(tree(record.recordDir as string)).toEqual([
      'out dir 555',
      'session.json file 444',
      'session.log file 444',
    ]);
    const shown = await d.cli(['show', reply.sessionId]);
    expect(shown.stdout).toContain('withheld: a file in /agentd/out held a credential value');
    expect(readdirSync(join(d.files.stateDir, 'work'))).toEqual([]);
  });

  it('seals the record of a session whose daemon died, with the output its container left', async () => {
    gate.hold();
    const d = await startDaemon({ agents: [agent('orphan', `${WRITE_OUTPUT}\n${waitAtGate()}\nexit 0`)] });
    const run = await d.cli(['trigger', 'orphan', '--detach']);
    const id = run.stdout.trim();
    await gate.waitFor(1);
    await d.waitForPhase(id, 'running');
    const dir = d.records().find((r) => r.id === id)?.recordDir as string;
    // Written while it runs, not sealed (in the background: it may lag the phase's log line).
    await expect
      .poll(() => JSON.parse(readFileSync(join(dir, 'session.json'), 'utf8')), { timeout: 10_000 })
      .toMatchObject({ id, phase: 'running' });
    expect((lstatSync(dir).mode & 0o777).toString(8)).toBe('700');
    d.signal('SIGKILL');
    await d.exited;
    // What is left in its group (podman children), as a service manager would; secret writes finish.
    await endProcessGroup(d.pid);
    // The command ends with nobody watching; its output is archived into the work dir.
    gate.open();
    const [container] = await listAgentdContainers(d.prefix);
    await execa('podman', ['wait', container?.name ?? '?']);
    const next = launchDaemon(d.files);
    await next.ready();
    // Logged once its record is sealed.
    await next.waitForOutcome(id);
    const record = next.records().find((r) => r.id === id) as unknown as SessionJson;
    expect(record.outcome).toBe('succeeded');
    expect(tree(dir)).toEqual(SEALED_OUTPUT);
    expect(readdirSync(join(d.files.stateDir, 'work'))).toEqual([]);
  });
});

describe('outcome kinds', () => {
  it('turns exit codes 3 and 4 into blocked and nothing_ready, which are not failures', async () => {
    const d = await startDaemon({
      agents: [
        agent('coder', 'exit "$(cat "$AGENTD_REQUEST_FILE")"', {
          exit_codes: { 10: 'work_failed', 3: 'blocked' },
        }),
      ],
    });
    const run = (code: number) => d.cli(['trigger', 'coder', '--request', String(code)]);
    const blocked = await run(3);
    expect(blocked.code, blocked.stdout + blocked.stderr).toBe(0);
    expect(blocked.stdout).toMatch(
      /session [0-9a-f]{16} succeeded \(blocked\), exit code 3, in .*: command reported it is blocked \(exit 3\)/,
    );
    const nothing = await run(4);
    expect(nothing.code).toBe(0);
    expect(nothing.stdout).toContain('succeeded (nothing_ready), exit code 4');
    const own = await run(10);
    expect(own.code).toBe(1);
    expect(own.stdout).toContain('failed (work_failed), exit code 10');
    const json = await d.cli(['trigger', 'coder', '--request', '4', '--json']);
    const reply = JSON.parse(json.stdout) as { sessionId: string };
    expect(reply).toMatchObject({ outcome: 'succeeded', kind: 'nothing_ready', exitCode: 4, code: 0 });
    // --strict: not done is not success.
    const strict = await d.cli(['wait', reply.sessionId, '--strict']);
    expect(strict.code).toBe(1);
    expect(strict.stdout).toContain('succeeded (nothing_ready), exit code 4');
    expect((await d.cli(['wait', reply.sessionId])).code).toBe(0);
    // The kind is in the record, its sealed session.json, status and the daemon's log.
    const records = d.records();
    expect(records.map((r) => (r as { kind?: string }).kind).sort()).toEqual([
      'blocked',
      'nothing_ready',
      'nothing_ready',
      'work_failed',
    ]);
    const strictTrigger = await d.cli(['trigger', 'coder', '--request', '3', '--strict', '--quiet']);
    expect(strictTrigger.code).toBe(1);
    expect(strictTrigger.stdout).toContain('succeeded (blocked), exit code 3');
    for (const record of records) {
      const sealed = JSON.parse(readFileSync(join(record.recordDir ?? '', 'session.json'), 'utf8'));
      expect(sealed.kind).toBe((record as { kind?: string }).kind);
    }
    const status = await d.cli(['status']);
    expect(status.stdout).toContain('succeeded (blocked) (exit 3)');
    const logged = d
      .logs()
      .filter((l) => l.event === 'session.outcome')
      .map((l) => l.kind);
    expect(logged.sort()).toEqual(['blocked', 'blocked', 'nothing_ready', 'nothing_ready', 'work_failed']);
  });
});

describe('show and export', () => {
  it('names the record directory, exports it whole, and still does once history has let the session go', async () => {
    const d = await startDaemon({ agents: [agent('shower', `${WRITE_OUTPUT}\necho done`)] });
    const run = await d.cli([
      'trigger',
      'shower',
      '--json',
      '--input',
      `notes=${join(makeTempDir('agentd-e2e-in-'), 'n')}`,
    ]);
    expect(run.code).toBe(2);
    const dir = makeTempDir('agentd-e2e-export-');
    writeFileSync(join(dir, 'notes.txt'), 'notes\n');
    const done = await d.cli(['trigger', 'shower', '--json', '--input', `notes=${join(dir, 'notes.txt')}`]);
    const { sessionId } = JSON.parse(done.stdout) as { sessionId: string };
    const recordDir = join(d.files.stateDir, 'records', 'shower', sessionId);
    const show = await d.cli(['show', sessionId]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toContain(`record     ${recordDir}`);
    expect(show.stdout).toContain('output     2 file(s)');
    expect(show.stdout).toContain('inputs     notes (6 bytes)');
    expect(show.stdout).toMatch(/commit {5}[0-9a-f]{40}/);
    const file = join(dir, 'session.tar.gz');
    const exported = await d.cli(['export', sessionId, '--output', file]);
    expect(exported.code, exported.stderr).toBe(0);
    const listing = (await execa('tar', ['-tzf', file])).stdout.split('\n').sort();
    expect(listing).toEqual([
      `${sessionId}/`,
      `${sessionId}/out/`,
      `${sessionId}/out/report/`,
      `${sessionId}/out/report/deep/`,
      `${sessionId}/out/report/deep/result.json`,
      `${sessionId}/out/summary.txt`,
      `${sessionId}/session.json`,
      `${sessionId}/session.log`,
    ]);
    // Not over an existing file.
    expect((await d.cli(['export', sessionId, '--output', file])).code).toBe(1);

    // History forgets the session (its state-dir record goes); its sealed record stays and is found.
    await d.stop();
    for (const name of readdirSync(join(d.files.stateDir, 'sessions'))) {
      if (name.startsWith(sessionId)) rmSync(join(d.files.stateDir, 'sessions', name));
    }
    const next = launchDaemon(d.files);
    await next.ready();
    const again = await next.cli(['show', sessionId, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ id: sessionId, outcome: 'succeeded', recordDir });
    const piped = await execa(
      'sh',
      ['-c', `node ${JSON.stringify(CLI)} export ${sessionId} | tar -tzf - | wc -l`],
      {
        env: { AGENTD_SOCKET: next.socketPath },
      },
    );
    expect(piped.stdout.trim()).toBe('8');
    expect((await next.cli(['export', 'ffffffffffffffff', '--output', join(dir, 'x.tgz')])).code).toBe(6);
    // Its id is still used: a trigger with it is refused, and the sealed record stays the first session's.
    const reused = await next.cli(['send', JSON.stringify({ type: 'trigger', agent: 'shower', sessionId })]);
    expect(reused.stdout).toContain('duplicate_session');
    expect(reused.stdout).toContain('was already used');
    expect(readdirSync(join(d.files.stateDir, 'sessions')).filter((n) => n.startsWith(sessionId))).toEqual(
      [],
    );
  });
});
