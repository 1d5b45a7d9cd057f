#!/usr/bin/env node
// Crash-recovery chaos, by hand (never in CI: random by design). A real daemon of its own instance (state
// dir, socket and a loopback git daemon and webhook receiver under a new temp dir), sessions of six
// shapes (`true`, `sleep 2`, 8 MB of base64, two credentials, a clone check, 40 MB in /agentd/out;
// CHAOS_SHAPES=a,b picks them), SIGKILL of the daemon 0-3 s
// after the first trigger (the podman processes it left killed too in half the rounds, as a service
// manager does, `podman secret` never), now and then again while it restarts; then it waits for every
// outcome and checks: one outcome each (show, history, the log's session.outcome lines), one delivery
// id per session, nothing of the instance left in Podman, no credential value in the state dir, the log
// or a notification, a flood's log without a line twice (unless a note says so) and with its last line.
// Each round logs its seed and what each session was doing when the kill came (the daemon's log).
// CHAOS_FAULTS=kill,reload,drain,podman picks other faults per round (see FAULTS below: a reload that
// changes, adds and removes agents racing the sessions and the kill; SIGTERM then SIGKILL, a second
// SIGTERM or nothing during the drain; conmon or `podman run` killed, the container `rm -f`'d or stopped,
// or the session's secret removed from outside while the daemon lives, CHAOS_PODMAN=conmon,run,... picks
// them), with a seventh shape, `long` (`sleep 6; echo long-done`), which may succeed only with that line.
//   source scripts/test-env.sh && npm run build && node scripts/chaos.mjs [rounds=30] [seed=<now>]
// Leaves its temp dir (daemon.log, report.log) for reading; removes its Podman objects by stopping.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(new URL('..', import.meta.url).pathname);
const CLI = join(ROOT, 'dist/cli/index.js');
const IMAGE = process.env.CHAOS_IMAGE ?? 'localhost/agentd-base:bookworm';
const rounds = Number(process.argv[2] ?? 30);
const baseSeed = Number(process.argv[3] ?? Date.now() % 1_000_000);

function mulberry32(a) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const dir = mkdtempSync(join(tmpdir(), 'chaos-'));
const stateDir = join(dir, 'state');
const socket = join(dir, 'run', 'agentd.sock');
const cfg = join(dir, 'agentd.yaml');
const logFile = join(dir, 'daemon.log');
const report = join(dir, 'report.log');
const instanceId = createHash('sha256').update(`${socket}\0${stateDir}`).digest('hex').slice(0, 32);
function say(line) {
  process.stdout.write(`${line}\n`);
  appendFileSync(report, `${line}\n`);
}

// A loopback git daemon with one repository.
const gitDir = join(dir, 'git');
mkdirSync(gitDir);
const work = join(dir, 'gitwork');
mkdirSync(work);
const genv = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'c',
  GIT_AUTHOR_EMAIL: 'c@x.invalid',
  GIT_COMMITTER_NAME: 'c',
  GIT_COMMITTER_EMAIL: 'c@x.invalid',
};
execFileSync('git', ['init', '-q', '--initial-branch=main'], { cwd: work, env: genv });
writeFileSync(join(work, 'README.md'), '# chaos\n');
execFileSync('git', ['add', '-A'], { cwd: work, env: genv });
execFileSync('git', ['commit', '-qm', 'one'], { cwd: work, env: genv });
execFileSync('git', ['clone', '-q', '--bare', work, join(gitDir, 'repo.git')], { env: genv });
writeFileSync(join(gitDir, 'repo.git', 'git-daemon-export-ok'), '');
const gitPort = 20000 + Math.floor(Math.random() * 20000);
const gitd = spawn(
  'git',
  [
    'daemon',
    '--reuseaddr',
    '--export-all',
    `--base-path=${gitDir}`,
    '--listen=127.0.0.1',
    `--port=${gitPort}`,
    gitDir,
  ],
  { stdio: 'ignore', detached: true },
);
const repo = `git://127.0.0.1:${gitPort}/repo.git`;

// A webhook receiver: every delivery, by session; it answers slowly now and then, so kills land in a POST.
const deliveries = new Map(); // session -> Set of delivery ids
const hookBodies = [];
const hook = createServer((req, res) => {
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    try {
      const j = JSON.parse(body);
      const id = j.session?.id;
      if (!deliveries.has(id)) deliveries.set(id, new Set());
      deliveries.get(id).add(j.delivery);
      hookBodies.push(body);
    } catch {}
    setTimeout(() => res.end('ok'), Math.random() < 0.3 ? 1500 : 0);
  });
});
await new Promise((r) => hook.listen(0, '127.0.0.1', r));
const hookPort = hook.address().port;

const CRED_A = `chaosA-${createHash('sha1').update(String(Math.random())).digest('hex')}`;
const CRED_B = `chaosB-${createHash('sha1').update(String(Math.random())).digest('hex')}`;
const agent = (name, command, extra = {}) =>
  `  - name: ${name}\n    image: ${IMAGE}\n    network: host\n    repo: ${repo}\n    command: ${JSON.stringify(command)}\n${extra.creds ?? ''}`;
// The configuration: `base`, or `changed` (a reload's: quick changed, sleeper and creds removed, extra added,
// max_sessions 2). Written beside and renamed over, as the README asks.
function writeConfig(variant) {
  const changed = variant === 'changed';
  writeFileSync(
    `${cfg}.new`,
    `daemon:\n  socket: ${socket}\n  state_dir: ${stateDir}\n  stop_grace: 2s\n  max_sessions: ${changed ? 2 : 4}\n  log_max_bytes: 65536\n  notify:\n    - url: http://127.0.0.1:${hookPort}/hook\n      secret: env:CHAOS_HOOK\nagents:\n` +
      agent('quick', changed ? ['sh', '-c', 'true'] : ['true']) +
      (changed ? agent('extra', ['sleep', '1']) : agent('sleeper', ['sleep', '2'])) +
      agent('flood', ['sh', '-c', 'head -c 6000000 /dev/urandom | base64; echo flood-done']) +
      (changed
        ? ''
        : agent('creds', ['sh', '-c', 'test -n "$CA" && test -n "$CB" && echo "a=$CA b=$CB" && sleep 1'], {
            creds:
              '    credentials:\n      - name: CA\n        source: env:CHAOS_CRED_A\n      - name: CB\n        source: env:CHAOS_CRED_B\n',
          })) +
      agent('long', ['sh', '-c', 'sleep 6; echo long-done']) +
      agent('cloner', ['sh', '-c', 'test -f README.md && sleep 0.5']) +
      agent(
        'archiver',
        [
          'sh',
          '-c',
          'head -c 40000000 /dev/urandom > "$AGENTD_OUTPUT_DIR/data.bin" && echo "key given" > "$AGENTD_OUTPUT_DIR/note.txt" && echo archived',
        ],
        {
          creds:
            '    credentials:\n      - name: CA\n        source: env:CHAOS_CRED_A\n      - name: CB\n        source: env:CHAOS_CRED_B\n',
        },
      ),
  );
  renameSync(`${cfg}.new`, cfg);
}
writeConfig('base');
const SHAPES = (process.env.CHAOS_SHAPES ?? 'quick,sleeper,flood,creds,cloner,archiver').split(',');
// What each round does to the daemon (CHAOS_FAULTS=a,b: one picked per round by a second generator of the
// round's seed, so that a `kill` round of a seed does what it did before): `kill` (SIGKILL), `reload` (the
// configuration changed and reloaded by SIGHUP or `agentd reload` while sessions are queued and run, then
// in most rounds the SIGKILL too, the restart reading the changed file), `drain` (SIGTERM, then SIGKILL, a
// second SIGTERM or nothing at a random instant of the drain), `podman` (the daemon lives; one session's
// `conmon` or `podman run`/`start --attach` killed, its container `rm -f`'d or stopped, or its secret
// removed, from outside, at a random instant of its life; a `long` session may succeed only with its last
// line).
const FAULTS = (process.env.CHAOS_FAULTS ?? 'kill').split(',');
const EXPECTED = 'succeeded';

const denv = {
  ...process.env,
  CHAOS_CRED_A: CRED_A,
  CHAOS_CRED_B: CRED_B,
  CHAOS_HOOK: 'hook-key-chaos',
  AGENTD_LOG_LEVEL: 'debug',
};
for (const k of Object.keys(denv)) if (k.startsWith('AGENTD_') && k !== 'AGENTD_LOG_LEVEL') delete denv[k];

let daemon;
function startDaemon(tag) {
  appendFileSync(logFile, `{"chaos":"start","tag":"${tag}","time":"${new Date().toISOString()}"}\n`);
  const out = openSync(logFile, 'a');
  daemon = spawn(process.execPath, [CLI, 'start', '--config', cfg, '--log-level', 'debug'], {
    env: denv,
    stdio: ['ignore', out, out],
    detached: true,
  });
  return daemon;
}
function cli(args, timeout = 30_000) {
  return new Promise((res) => {
    const c = spawn(process.execPath, [CLI, ...args, '--socket', socket], {
      env: denv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    const t = setTimeout(() => c.kill('SIGKILL'), timeout);
    c.on('close', (code) => {
      clearTimeout(t);
      res({ code, out, err });
    });
  });
}
async function waitReady(ms = 90_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const r = await cli(['status', '--json'], 10_000);
    if (r.out) {
      try {
        const s = JSON.parse(r.out);
        if (s.state === 'ready') return s;
      } catch {}
    }
    await sleep(200);
  }
  throw new Error('daemon not ready');
}
function podmanLines(args) {
  const r = spawnSync('podman', args, { encoding: 'utf8', timeout: 60_000 });
  return (r.stdout ?? '').split('\n').filter(Boolean);
}
const prefix = `agentd-${instanceId.slice(0, 8)}-`;
function leftovers() {
  return [
    ...podmanLines([
      'ps',
      '-a',
      '--filter',
      `label=io.agentd.instance=${instanceId}`,
      '--format',
      '{{.Names}} {{.State}}',
    ]).map((l) => `container ${l}`),
    ...podmanLines(['secret', 'ls', '--format', '{{.Name}}'])
      .filter((n) => n.startsWith(prefix))
      .map((l) => `secret ${l}`),
    ...podmanLines([
      'volume',
      'ls',
      '--filter',
      `label=io.agentd.instance=${instanceId}`,
      '--format',
      '{{.Name}}',
    ]).map((l) => `volume ${l}`),
  ];
}
function orphanPodmans() {
  const r = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^\d+\s+\S*podman\s/.test(l) && l.includes(prefix))
    .map((l) => ({ pid: Number(l.split(/\s+/)[0]), args: l }));
}
function killOrphans() {
  for (const o of orphanPodmans()) {
    if (/\bsecret\b/.test(o.args)) continue; // never kill a podman secret command
    try {
      process.kill(o.pid, 'SIGKILL');
    } catch {}
  }
}

const all = new Map(); // id -> {agent, round}
let violations = 0;
const killPhases = [];

function lastPhases(ids) {
  // What the daemon log says each session was doing last before the kill.
  const lines = readFileSync(logFile, 'utf8').split('\n');
  const start =
    lines
      .map((l, i) => (l.includes('"chaos":"start"') ? i : -1))
      .filter((i) => i >= 0)
      .at(-1) ?? 0;
  const phase = {};
  for (const l of lines.slice(start)) {
    let j;
    try {
      j = JSON.parse(l);
    } catch {
      continue;
    }
    if (j.session && ids.includes(j.session) && j.event)
      phase[j.session] = `${j.event}${j.phase ? `:${j.phase}` : ''}`;
  }
  return phase;
}

function waitExit(ms) {
  return new Promise((r) => {
    if (daemon.exitCode !== null || daemon.signalCode) return r(true);
    const t = setTimeout(() => r(false), ms);
    daemon.once('exit', () => {
      clearTimeout(t);
      r(true);
    });
  });
}
async function killDaemon() {
  try {
    process.kill(daemon.pid, 'SIGKILL');
  } catch {}
  await waitExit(60_000);
}
function inspect(name, format) {
  const r = spawnSync('podman', ['inspect', '--format', format, name], { encoding: 'utf8', timeout: 30_000 });
  return (r.stdout ?? '').trim();
}
// One fault from outside Podman's side on a running session of this instance; returns what it did.
function podmanFault(rnd) {
  const rows = podmanLines([
    'ps',
    '--filter',
    `label=io.agentd.instance=${instanceId}`,
    '--format',
    '{{.Names}} {{.Labels}}',
  ]);
  if (rows.length === 0) return undefined;
  const row = rows[Math.floor(rnd() * rows.length)];
  const name = row.split(' ')[0];
  const sid = /io\.agentd\.session:([0-9a-f-]+)/.exec(row)?.[1];
  const kinds = (process.env.CHAOS_PODMAN ?? 'conmon,run,rm,stop,secret').split(',');
  const kind = kinds[Math.floor(rnd() * kinds.length)];
  const state = inspect(name, '{{.State.Status}}');
  let did = kind;
  if (kind === 'conmon') {
    const pid = Number(inspect(name, '{{.State.ConmonPid}}'));
    if (pid > 0)
      try {
        process.kill(pid, 'SIGKILL');
      } catch (e) {
        did += ` (${e.code})`;
      }
    else did += ' (no pid)';
  } else if (kind === 'run') {
    const ps = orphanPodmans().filter((o) => o.args.includes(name) && !/\bsecret\b/.test(o.args));
    for (const o of ps)
      try {
        process.kill(o.pid, 'SIGKILL');
      } catch {}
    did += ` (${ps.length} killed: ${ps.map((o) => o.args.split(' ').slice(1, 3).join(' ')).join(',')})`;
  } else if (kind === 'rm') spawnSync('podman', ['rm', '-f', '-t', '0', name], { timeout: 60_000 });
  else if (kind === 'stop') spawnSync('podman', ['stop', '-t', '1', name], { timeout: 60_000 });
  else if (kind === 'secret') {
    // The daemon removes a session's secrets once its container started: those of any session of the
    // instance still holding some (created, not yet started) go, when the chosen one has none.
    const all = podmanLines(['secret', 'ls', '--format', '{{.Name}}']).filter((s) => s.startsWith(prefix));
    const own = all.filter((s) => sid && s.startsWith(`${prefix}${sid.slice(0, 16)}-`));
    const secrets = own.length > 0 ? own : all;
    for (const s of secrets) spawnSync('podman', ['secret', 'rm', s], { timeout: 60_000 });
    did += ` (${secrets.length})`;
  }
  return { name, sid, kind, did, state };
}

async function round(n) {
  const seed = baseSeed + n;
  const rnd = mulberry32(seed);
  const frnd = mulberry32(seed ^ 0x5bd1e995);
  const fault = FAULTS[Math.floor(frnd() * FAULTS.length)];
  const count = 2 + Math.floor(rnd() * 4);
  const shapes = Array.from({ length: count }, () => SHAPES[Math.floor(rnd() * SHAPES.length)]);
  const killAt = Math.floor(rnd() * 3000);
  const killOrph = rnd() < 0.5;
  const staggered = rnd() < 0.5;
  const secondKill = rnd() < 0.3 ? Math.floor(rnd() * 2500) : undefined;
  // The fault's own choices, from its own generator.
  const reloadAt = Math.floor(frnd() * 3000);
  const reloadBy = frnd() < 0.5 ? 'SIGHUP' : 'agentd reload';
  const reloadKill = frnd() < 0.7;
  const drainEnd = ['SIGKILL', 'SIGTERM', 'none'][Math.floor(frnd() * 3)];
  const drainAt = Math.floor(frnd() * 3000);
  const faultAt = 300 + Math.floor(frnd() * 4500);
  if (fault === 'podman' && !shapes.includes('long')) shapes.push('long');
  const what =
    fault === 'kill'
      ? ''
      : fault === 'reload'
        ? ` reload by ${reloadBy} at ${reloadAt} ms, ${reloadKill ? `the kill ${Math.floor(killAt / 3)} ms later` : 'no kill'}`
        : fault === 'drain'
          ? ` SIGTERM at ${killAt} ms, ${drainEnd} ${drainAt} ms later`
          : ` a podman fault at ${faultAt} ms`;
  say(
    `round ${n} seed ${seed} fault ${fault}:${what} shapes ${shapes.join(',')} kill at ${killAt} ms, orphans ${killOrph ? 'killed' : 'kept'}, staggered ${staggered}`,
  );
  const ids = [];
  const t0 = Date.now();
  let killed = false;
  const triggering = (async () => {
    for (const s of shapes) {
      if (killed) break;
      const r = await cli(['trigger', s, '--detach', '--json'], 15_000);
      if (r.code === 0) {
        const j = JSON.parse(r.out);
        ids.push(j.sessionId);
        all.set(j.sessionId, { agent: s, round: n });
      } else if (!killed) say(`  trigger ${s} refused: ${r.code} ${r.err.trim().slice(0, 200)}`);
      if (staggered) await sleep(Math.floor(rnd() * 400));
    }
  })();
  let phases = {};
  const faults = new Map(); // session -> what a podman fault did to it
  let reloaded = false;
  if (fault === 'reload') {
    const reloading = (async () => {
      await sleep(reloadAt);
      writeConfig('changed');
      reloaded = true;
      if (reloadBy === 'SIGHUP')
        try {
          process.kill(daemon.pid, 'SIGHUP');
        } catch {}
      else {
        const r = await cli(['reload', '--json'], 30_000);
        say(`  reload: ${r.code} ${(r.out || r.err).trim().slice(0, 200)}`);
      }
    })();
    if (reloadKill) {
      // The kill 0-1 s after the reload was asked for: while its thread reads the file, or just after.
      await sleep(reloadAt + Math.floor(killAt / 3));
      killed = true;
      await killDaemon();
    }
    await reloading;
  } else if (fault === 'podman') {
    await sleep(faultAt);
    const f = podmanFault(frnd);
    if (f) {
      if (f.sid) faults.set(f.sid, f);
      say(`  podman fault at ${Date.now() - t0} ms: ${f.did} on ${f.name} (${f.state})`);
    } else say('  podman fault: no container ran');
  } else if (fault === 'drain') {
    await sleep(killAt);
    killed = true;
    try {
      process.kill(daemon.pid, 'SIGTERM');
    } catch {}
    await sleep(drainAt);
    if (drainEnd === 'SIGKILL') await killDaemon();
    else {
      if (drainEnd === 'SIGTERM')
        try {
          process.kill(daemon.pid, 'SIGTERM');
        } catch {}
      if (!(await waitExit(90_000))) {
        violations++;
        say(`  VIOLATION: the drain (${drainEnd}) did not end in 90 s`);
        await killDaemon();
      } else if (daemon.exitCode !== 0) {
        violations++;
        say(`  VIOLATION: the drained daemon exited ${daemon.exitCode} ${daemon.signalCode ?? ''}`);
      }
    }
  } else {
    await sleep(killAt);
    killed = true;
    await killDaemon();
  }
  await triggering;
  const down = daemon.exitCode !== null || daemon.signalCode;
  if (down) {
    phases = lastPhases(ids);
    killPhases.push(...Object.values(phases));
    say(`  down at ${Date.now() - t0} ms; ${ids.length} accepted; last events ${JSON.stringify(phases)}`);
    if (killOrph) killOrphans();
    startDaemon(`round ${n} restart`);
    if (secondKill !== undefined) {
      // Killed again while it starts: reconciling, adopting, recovering.
      await sleep(secondKill);
      await killDaemon();
      const phases2 = lastPhases(ids);
      say(`  killed again ${secondKill} ms into its restart; last events ${JSON.stringify(phases2)}`);
      if (killOrph) killOrphans();
      startDaemon(`round ${n} restart 2`);
    }
  } else say(`  daemon kept running; ${ids.length} accepted`);
  await waitReady();
  // wait for all outcomes of all sessions so far (this round's)
  const end = Date.now() + 120_000;
  let pending = ids;
  while (pending.length > 0 && Date.now() < end) {
    pending = [];
    for (const id of ids) {
      const r = await cli(['show', id, '--json'], 10_000);
      if (r.code !== 0 || !JSON.parse(r.out).outcome) pending.push(id);
    }
    if (pending.length) await sleep(500);
  }
  if (pending.length) {
    violations++;
    say(`  VIOLATION: no outcome within 120 s for ${pending.join(',')}`);
  }
  for (const id of ids) {
    const r = await cli(['show', id, '--json'], 10_000);
    let rec;
    try {
      rec = JSON.parse(r.out);
    } catch {
      say(`  VIOLATION: show ${id} gave ${r.code} ${r.err.slice(0, 200)}`);
      violations++;
      continue;
    }
    const o = rec.outcome;
    const outcome = typeof o === 'string' ? o : (o?.outcome ?? o?.kind ?? JSON.stringify(o));
    if (all.get(id).agent === 'archiver' && outcome === EXPECTED) {
      // Its two files hold no credential value: kept whole, whenever the kill came.
      const out = rec.output ?? {};
      if (out.files !== 2 || out.missing) {
        violations++;
        say(`  VIOLATION: archiver ${id} output ${JSON.stringify(out).slice(0, 300)}`);
      }
    }
    if (all.get(id).agent === 'long' && outcome === EXPECTED) {
      // `sleep 6; echo long-done`: a success whose command was killed (stopped, removed) is a lie.
      const r = await cli(['logs', id], 30_000);
      if (!r.out.split('\n').includes('long-done')) {
        violations++;
        say(`  VIOLATION: long ${id} succeeded without its last line (fault: ${faults.get(id)?.did ?? '-'})`);
      }
    }
    const f = faults.get(id);
    if (f)
      say(
        `  fault ${f.did} on ${id} ${all.get(id).agent}: ${outcome} ${JSON.stringify(o?.message ?? rec.message ?? '')}`,
      );
    else if (outcome !== EXPECTED) {
      say(
        `  NOTE ${id} ${all.get(id).agent}: ${JSON.stringify(o)} ${JSON.stringify(rec.message ?? rec.outcome?.message ?? '')} (last event before kill: ${phases[id] ?? '-'})`,
      );
    }
  }
  // A flood's log: no line twice unless a note says output may be repeated; its last line kept.
  for (const id of ids.filter((i) => all.get(i).agent === 'flood')) {
    const r = await cli(['logs', id], 30_000);
    const lines = r.out.split('\n');
    const seen = new Set();
    let dup = 0;
    for (const l of lines) {
      if (!/^[A-Za-z0-9+/=]{40,}$/.test(l)) continue;
      if (seen.has(l)) dup++;
      seen.add(l);
    }
    const repeatedNote = lines.some((l) => l.startsWith('[agentd') && /repeated/.test(l));
    if (dup > 0 && !repeatedNote) {
      violations++;
      say(`  VIOLATION: flood ${id} log has ${dup} line(s) twice, no note`);
    }
    if (/succeeded/.test(r.err) && !lines.includes('flood-done')) {
      violations++;
      say(`  VIOLATION: flood ${id} succeeded but its log lacks its last line`);
    }
    const notes = lines.filter((l) => l.startsWith('[agentd') && !/skipped \(seq 1-/.test(l));
    if (notes.length) say(`  flood ${id} notes: ${notes.join(' | ').slice(0, 300)}`);
  }
  // Outcomes in the log: exactly one session.outcome per session over the whole run.
  const logText = readFileSync(logFile, 'utf8');
  for (const id of ids) {
    const c = logText.split('\n').filter((l) => l.includes('"session.outcome"') && l.includes(id)).length;
    if (c > 1) {
      violations++;
      say(`  VIOLATION: ${id} has ${c} session.outcome lines`);
    } else if (c === 0) say(`  NOTE ${id}: no session.outcome line in the log (the record has its outcome)`);
  }
  // Leftovers once nothing runs (give teardown a little time).
  let left = [];
  const lend = Date.now() + 20_000;
  do {
    const st = JSON.parse((await cli(['status', '--json'])).out || '{}');
    const running = (st.sessions?.running ?? st.running ?? 0) + (st.sessions?.queued ?? st.queued ?? 0);
    left = leftovers();
    if (left.length === 0 && !running) break;
    await sleep(500);
  } while (Date.now() < lend);
  if (left.length) {
    violations++;
    say(`  VIOLATION: leftovers ${left.join('; ')}`);
  }
  for (const cred of [CRED_A, CRED_B]) {
    const g = spawnSync('grep', ['-rl', '-a', cred, stateDir, logFile], { encoding: 'utf8' });
    if (g.stdout.trim()) {
      violations++;
      say(`  VIOLATION: credential value in ${g.stdout.trim()}`);
    }
  }
  const outDirs = readdirSync(tmpdir()).filter((d) => d.startsWith('agentd-output-'));
  const mine = outDirs.filter((d) => {
    const pid = Number(d.split('-')[2]);
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  });
  if (mine.length) say(`  NOTE: dead daemons' output dirs in tmp: ${mine.join(',')}`);
  if (reloaded) {
    writeConfig('base');
    const r = await cli(['reload', '--json'], 30_000);
    if (r.code !== 0) say(`  reload back to base: ${r.code} ${(r.out || r.err).trim().slice(0, 200)}`);
  }
}

startDaemon('initial');
await waitReady();
say(`chaos dir ${dir} instance ${instanceId} base seed ${baseSeed}`);
try {
  for (let n = 0; n < rounds; n++) await round(n);
  // history: each id once
  const h = JSON.parse((await cli(['history', '--json', '--limit', '1000'])).out);
  const seen = new Map();
  for (const r of h.sessions) seen.set(r.id ?? r.sessionId, (seen.get(r.id ?? r.sessionId) ?? 0) + 1);
  for (const id of all.keys()) {
    if (seen.get(id) !== 1) {
      violations++;
      say(`VIOLATION: history lists ${id} ${seen.get(id) ?? 0} times`);
    }
  }
  // Deliveries: give the outbox a moment, then each session once, by one delivery id.
  await sleep(15_000);
  for (const id of all.keys()) {
    const got = deliveries.get(id);
    if (got?.size !== 1) {
      violations++;
      say(`VIOLATION: session ${id} notified with ${got ? got.size : 0} delivery id(s)`);
    }
  }
  for (const b of hookBodies)
    if (b.includes(CRED_A) || b.includes(CRED_B)) say('VIOLATION: credential in a notification');
  const counts = {};
  for (const p of killPhases) counts[p] = (counts[p] ?? 0) + 1;
  say(
    `done: ${rounds} rounds, ${all.size} sessions, ${violations} violations; last events at kill: ${JSON.stringify(counts)}`,
  );
} finally {
  try {
    process.kill(daemon.pid, 'SIGTERM');
  } catch {}
  await new Promise((r) => (daemon.exitCode !== null || daemon.signalCode ? r() : daemon.once('exit', r)));
  try {
    process.kill(-gitd.pid, 'SIGTERM');
    hook.close();
    hook.closeAllConnections?.();
  } catch {}
  const left = leftovers();
  say(`after stop: leftovers ${left.length ? left.join('; ') : 'none'}`);
}
