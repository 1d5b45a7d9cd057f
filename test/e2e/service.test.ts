import { spawn } from 'node:child_process';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchDaemon, leftoversOfDaemons, prepareDaemon } from '../helpers/daemon.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll, makeTempDir, track } from '../helpers/resources.js';

const ROOT = join(import.meta.dirname, '..', '..');

/**
 * A stand-in for systemd's notification socket: an AF_UNIX datagram socket (which Node cannot open, so
 * perl, which every Debian has). It prints each message on one line (newlines as `|`); on READY=1 it
 * connects to the daemon's socket at once and appends whether that worked, so a READY=1 sent before
 * the socket accepts shows as `connect=failed`.
 */
const LISTENER = String.raw`
use strict; use warnings; use Socket; use IO::Socket::UNIX;
my ($path, $agentd) = @ARGV;
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
bind($s, pack_sockaddr_un($path)) or die "bind: $!";
$| = 1; print "listening\n";
while (1) {
  my $msg; defined(recv($s, $msg, 65536, 0)) or die "recv: $!";
  my $probe = '';
  if ($msg =~ /^READY=1$/m) {
    my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $agentd);
    $probe = $c ? ' connect=ok' : " connect=failed:$!";
    close $c if $c;
  }
  $msg =~ s/\n/|/g;
  print "$msg$probe\n";
}
`;

/** One notification as fields (`READY: '1'`, ...), with `connect` set on READY=1 messages. */
type Notification = Record<string, string>;

function parse(line: string): Notification {
  const [message = '', probe] = line.split(' connect=');
  const fields = Object.fromEntries(
    message
      .split('|')
      .map((field) => [field.slice(0, field.indexOf('=')), field.slice(field.indexOf('=') + 1)]),
  );
  return probe === undefined ? fields : { ...fields, connect: probe };
}

interface Listener {
  path: string;
  messages: Notification[];
  /** Resolves once n messages (BARRIER=1 ones left out) have arrived. */
  waitFor(n: number, timeoutMs?: number): Promise<Notification[]>;
}

async function startListener(agentdSocket: string): Promise<Listener> {
  const path = join(makeTempDir('agentd-notify-'), 'notify.sock');
  const child = track.process(
    spawn('perl', ['-e', LISTENER, path, agentdSocket], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const messages: Notification[] = [];
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  await new Promise<void>((resolve, reject) => {
    lines.once('line', () => resolve());
    child.once('exit', () => reject(new Error(`the notify listener exited: ${stderr}`)));
  });
  // sd_notify_barrier's own messages carry no state; they only prove the manager read everything.
  lines.on('line', (line) => {
    if (line !== 'BARRIER=1') messages.push(parse(line));
  });
  return {
    path,
    messages,
    waitFor: async (n, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < n) {
        if (Date.now() > deadline) throw new Error(`got ${JSON.stringify(messages)}, waited for ${n}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return messages;
    },
  };
}

const hasSystemdNotify =
  (await execa('sh', ['-c', 'command -v systemd-notify'], { reject: false })).exitCode === 0;
const hasSystemdAnalyze =
  (await execa('sh', ['-c', 'command -v systemd-analyze'], { reject: false })).exitCode === 0;

let git: GitServer;
beforeAll(async () => {
  git = await startGitServer();
});
afterAll(async () => {
  await git?.stop();
});
afterEach(async () => {
  const left = await leftoversOfDaemons();
  await cleanupAll();
  expect(left).toEqual([]);
});

describe('service manager readiness (sd_notify)', () => {
  it.runIf(hasSystemdNotify)(
    'READY=1 only once the socket accepts; RELOADING=1 then READY=1 on SIGHUP; STOPPING=1 on SIGTERM; no agent sees NOTIFY_SOCKET',
    async () => {
      const files = prepareDaemon({
        agents: [
          {
            name: 'probe',
            image: TEST_IMAGE,
            command: ['sh', '-c', 'echo "notify=$NOTIFY_SOCKET"'],
            repo: git.url(),
            network: 'host',
          },
        ],
      });
      const listener = await startListener(files.socketPath);
      const d = launchDaemon(files, { env: { NOTIFY_SOCKET: listener.path } });
      await d.ready();
      const [ready] = await listener.waitFor(1);
      expect(ready).toEqual({
        READY: '1',
        STATUS: 'ready: 1 agent(s), 0/4 running, 0 queued',
        MAINPID: String(d.pid),
        connect: 'ok',
      });

      // Podman would hand NOTIFY_SOCKET on to the container: the agent must not reach the service manager.
      const session = await d.cli(['trigger', 'probe']);
      expect(session.code, session.stderr).toBe(0);
      expect(session.stdout).toMatch(/^notify=$/m);

      d.signal('SIGHUP');
      await d.waitForLog((l) => l.event === 'daemon.reloaded');
      const afterReload = await listener.waitFor(3);
      expect(afterReload[1]).toEqual({
        RELOADING: '1',
        STATUS: `reloading ${files.configPath}`,
        MAINPID: String(d.pid),
      });
      expect(afterReload[2]).toMatchObject({
        READY: '1',
        STATUS: expect.stringMatching(/^ready: /),
        connect: 'ok',
      });

      expect(await d.stop('SIGTERM')).toBe(0);
      const all = await listener.waitFor(4);
      expect(all[3]).toEqual({
        STOPPING: '1',
        STATUS: 'stopping: 0 running session(s) to finish',
        MAINPID: String(d.pid),
      });
      expect(all).toHaveLength(4);
      expect(d.logs().filter((l) => l.event === 'daemon.notify_failed')).toEqual([]);
    },
  );

  it('without NOTIFY_SOCKET nothing is sent and nothing is logged about it', async () => {
    const files = prepareDaemon({ agents: [{ name: 'x', image: TEST_IMAGE, command: ['true'] }] });
    const d = launchDaemon(files, { env: { NOTIFY_SOCKET: undefined } });
    await d.ready();
    expect(await d.stop()).toBe(0);
    expect(d.logs().filter((l) => l.event === 'daemon.notify_failed')).toEqual([]);
  });
});

describe('examples/agentd.service', () => {
  const unit = readFileSync(join(ROOT, 'examples', 'agentd.service'), 'utf8');

  it('waits for readiness, reloads with SIGHUP and finds agentd where npm installs it', () => {
    expect(unit).toMatch(/^Type=notify$/m);
    expect(unit).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    // npm link / npm install -g put agentd in $(npm prefix -g)/bin: /usr/bin or /usr/local/bin, both on systemd's PATH.
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/env agentd start --config \/etc\/agentd\/agentd\.yaml$/m);
  });

  it.runIf(hasSystemdAnalyze)('passes systemd-analyze verify', async () => {
    const dir = makeTempDir('agentd-unit-');
    copyFileSync(join(ROOT, 'examples', 'agentd.service'), join(dir, 'agentd.service'));
    const result = await execa('systemd-analyze', ['verify', join(dir, 'agentd.service')], {
      reject: false,
      all: true,
    });
    expect(result.exitCode, result.all).toBe(0);
    expect(result.all).not.toMatch(/agentd\.service/);
  });
});
