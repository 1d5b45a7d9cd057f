/**
 * What `agentd agents` (and the `agents` request, GET /v1/agents, `validate --json`) says an agent's
 * sessions reach on the host side, as loaded: the hosts they may run on, their user namespace (the
 * daemon's default included), the host paths they see, their caches and the agent's own webhooks. No
 * credential value, no webhook query or token-like part of its URL, only each source's kind and name.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { renderAgent } from '../../src/cli/agents.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { AGENT_SHAPE, type Shape, shapeProblem } from '../../src/cli/reply-check.js';
import { hostsOf } from '../../src/config/hosts.js';
import { parseConfig } from '../../src/config/load.js';
import type { Settings } from '../../src/config/types.js';
import { type AgentView, agentViewSchema, describeAgent } from '../../src/sessions/agent-view.js';
import { runCliInProcess as run } from '../helpers/cli-in-process.js';
import { fakeDaemon } from '../helpers/fake-daemon.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(() => cleanupAll());

const HOOK_KEY = 'whsec-agent-view-6d1f0c9e7d3b2a41';
const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000', AGENT_HOOK_KEY: HOOK_KEY };
const HOOK_URL =
  'https://hooks.example.com/services/T0AB12CD3/B0EF45GH6/abcdefghijklmnopqrstuvwx?token=q7x9z2';

function load(dir: string, text: string): Settings {
  const file = join(dir, 'agentd.yaml');
  writeFileSync(file, text);
  return parseConfig(text, file, ENV, 1000);
}

function views(settings: Settings): AgentView[] {
  return settings.agents.map((agent) => describeAgent(agent, { hosts: hostsOf(settings) }));
}

describe('the agents view: what its sessions reach', () => {
  it('has the user namespace as loaded, mounts, context, caches, hosts and own webhooks', () => {
    const dir = makeTempDir('agentd-unit-agent-view-');
    for (const d of ['data', 'ctx', 'out']) mkdirSync(join(dir, d));
    writeFileSync(join(dir, 'key'), 'not really a key', { mode: 0o600 });
    const settings = load(
      dir,
      `daemon:\n  state_dir: ${join(dir, 'state')}\n  user_namespace: auto\n` +
        'hosts:\n' +
        `  - { name: build1, url: "unix://${join(dir, 'podman.sock')}", labels: { gpu: "yes" } }\n` +
        `  - { name: build2, url: "ssh://agentd@build2.example:22/run/podman/podman.sock", identity: ${join(dir, 'key')} }\n` +
        'agents:\n' +
        '  - name: inherits\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n' +
        `    mounts:\n      - { source: ${join(dir, 'data')}, target: /data }\n` +
        '  - name: own\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n' +
        '    user_namespace: host\n    host_labels: { gpu: "yes" }\n' +
        `    mounts:\n      - { source: ${join(dir, 'out')}, target: /results, read_only: false }\n` +
        `    context: ${join(dir, 'ctx')}\n` +
        '    caches: { npm: /home/own/.npm }\n' +
        `    notify:\n      - { url: "${HOOK_URL}", secret: env:AGENT_HOOK_KEY, outcomes: [failed, error] }\n`,
    );
    const [inherits, own] = views(settings);
    expect(inherits).toMatchObject({
      userNamespace: 'auto',
      mounts: [{ source: join(dir, 'data'), target: '/data', readOnly: true }],
      caches: [],
      hosts: ['build1', 'build2'],
      hostLabels: {},
      notify: [],
    });
    expect(inherits?.context).toBeUndefined();
    expect(own).toMatchObject({
      userNamespace: 'host',
      mounts: [{ source: join(dir, 'out'), target: '/results', readOnly: false }],
      context: join(dir, 'ctx'),
      caches: [{ name: 'npm', target: '/home/own/.npm' }],
      hosts: ['build1'],
      hostLabels: { gpu: 'yes' },
      notify: [
        {
          url: 'https://hooks.example.com/services/…/…/…?…',
          secret: 'env:AGENT_HOOK_KEY',
          outcomes: ['failed', 'error'],
        },
      ],
    });
    const text = [inherits, own].map((v) => renderAgent(v as AgentView)).join('');
    expect(text).toContain('\n    hosts build1, build2, user_namespace auto\n');
    expect(text).toContain(`\n    mount ${join(dir, 'data')} at /data, read-only\n`);
    expect(text).toContain('\n    hosts build1 (host_labels gpu=yes), user_namespace host\n');
    expect(text).toContain(`\n    mount ${join(dir, 'out')} at /results, read-write\n`);
    expect(text).toContain(`\n    context ${join(dir, 'ctx')} at /agentd/context, read-only\n`);
    expect(text).toContain('\n    caches npm at /home/own/.npm\n');
    expect(text).toContain(
      '\n    notify https://hooks.example.com/services/…/…/…?… (signed with env:AGENT_HOOK_KEY), on failed, error\n',
    );
    // Neither a host's URL (a user name in it) nor the webhook's query or token-like path.
    for (const out of [JSON.stringify([inherits, own]), text]) {
      for (const hidden of ['agentd@', 'token=q7x9z2', 'abcdefghijklmnopqrstuvwx', 'T0AB12CD3', HOOK_KEY]) {
        expect(out).not.toContain(hidden);
      }
    }
  });

  it('validate prints the same lines for each agent', async () => {
    const dir = makeTempDir('agentd-unit-agent-view-');
    mkdirSync(join(dir, 'out'));
    const file = join(dir, 'agentd.yaml');
    writeFileSync(
      file,
      `daemon:\n  state_dir: ${join(dir, 'state')}\n  socket: ${join(dir, 'run', 'agentd.sock')}\n  user_namespace: auto\n` +
        'agents:\n  - name: own\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n' +
        '    user_namespace: host\n' +
        `    mounts:\n      - { source: ${join(dir, 'out')}, target: /results, read_only: false }\n` +
        '    caches: { npm: /home/own/.npm }\n',
    );
    const result = await run(['validate', '--config', file]);
    expect(result.code, result.stderr).toBe(EXIT.succeeded);
    expect(result.stdout).toContain(
      '    hosts local, user_namespace host\n' +
        `    mount ${join(dir, 'out')} at /results, read-write\n` +
        '    caches npm at /home/own/.npm\n',
    );
  });

  it('says `local` without hosts:, and user_namespace host by default', () => {
    const dir = makeTempDir('agentd-unit-agent-view-');
    const settings = load(
      dir,
      `daemon:\n  state_dir: ${join(dir, 'state')}\n` +
        'agents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n',
    );
    const [demo] = views(settings);
    expect(demo).toMatchObject({
      userNamespace: 'host',
      mounts: [],
      caches: [],
      hosts: ['local'],
      notify: [],
    });
    const text = renderAgent(demo as AgentView);
    expect(text).toContain('\n    hosts local, user_namespace host\n');
    expect(text).not.toMatch(/mount |context |caches |notify /);
  });

  it('names the environment variables, as the README says, and never their values', () => {
    const dir = makeTempDir('agentd-unit-agent-view-');
    const settings = load(
      dir,
      `daemon:\n  state_dir: ${join(dir, 'state')}\n` +
        'agents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n' +
        '    env: { LOG_LEVEL: debug, GREETING: hello-6e1d2c }\n',
    );
    const text = renderAgent(views(settings)[0] as AgentView);
    expect(text).toContain('\n    env LOG_LEVEL, GREETING (values not shown)\n');
    expect(text).not.toMatch(/debug|hello-6e1d2c/);
  });

  it('prints a reply of a daemon that does not send these fields as before', () => {
    const old: AgentView = {
      name: 'demo',
      image: 'localhost/agentd-base:bookworm',
      command: ['true'],
      network: 'bridge',
      env: [],
      credentials: [],
      resources: { memory: '2g', memorySwap: '2g', pids: 4096, disk: '1g' },
      capAdd: [],
    };
    expect(renderAgent(old)).toBe(
      'demo: localhost/agentd-base:bookworm ["true"]\n' +
        '    repo (none: give one per trigger), network bridge, no timeout\n' +
        '    credentials none\n' +
        '    limits memory 2g (no swap), cpus unlimited, pids 4096, disk 1g\n',
    );
  });
});

describe('agentd agents against a reply that is not a list of agents', () => {
  it('is a bad reply naming the field (exit 4), not {} with exit 0 or "Cannot read properties"', async () => {
    for (const [reply, where] of [
      [{ v: 2, type: 'agents' }, '(agents is missing)'],
      [{ v: 2, type: 'agents', agents: 'x' }, '(agents is not a list)'],
      [{ v: 2, type: 'agents', agents: [null] }, '(agents[0] is not an object)'],
      [{ v: 2, type: 'agents', agents: [{ name: 'x' }] }, '(agents[0].image is missing)'],
    ] as const) {
      const path = await fakeDaemon(reply);
      const json = await run(['agents', '--json', '--socket', path]);
      expect(json.code, JSON.stringify(reply)).toBe(EXIT.infrastructure);
      const failure = JSON.parse(json.stdout.trim()) as { error: string; message: string };
      expect(failure).toMatchObject({ error: 'bad_reply', code: EXIT.infrastructure });
      expect(failure.message).toContain(`the daemon sent a malformed agents reply ${where}`);
      const text = await run(['agents', '--socket', path]);
      expect(text.code).toBe(EXIT.infrastructure);
      expect(text.stdout).toBe('');
      expect(text.stderr).toContain(`agentd: the daemon sent a malformed agents reply ${where}`);
      expect(text.stderr).not.toContain('Cannot read properties');
    }
  });

  it('takes a whole reply, and one of a daemon that does not send the newer fields', async () => {
    const dir = makeTempDir('agentd-unit-agent-view-');
    const settings = load(
      dir,
      `daemon:\n  state_dir: ${join(dir, 'state')}\n` +
        'agents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n',
    );
    const whole = views(settings);
    const { userNamespace, mounts, caches, hosts, hostLabels, notify, ...older } = whole[0] as AgentView;
    for (const agents of [whole, [older]]) {
      const path = await fakeDaemon({ v: 2, type: 'agents', agents });
      const text = await run(['agents', '--socket', path]);
      expect(text.code, text.stderr).toBe(EXIT.succeeded);
      expect(text.stdout).toMatch(/^demo: localhost\/agentd-base:bookworm \["run"\]\n/);
      const json = await run(['agents', '--json', '--socket', path]);
      expect(json.code, json.stderr).toBe(EXIT.succeeded);
      expect(JSON.parse(json.stdout)).toEqual({ agents });
    }
  });
});

describe('the CLI’s table of an agent (AGENT_SHAPE)', () => {
  /** An agent with every field, optional ones included. */
  const FULL: AgentView = {
    name: 'demo',
    image: 'localhost/agentd-base:bookworm',
    command: ['run'],
    repo: 'https://example.com/x.git',
    timeoutMs: 60_000,
    network: 'bridge',
    env: ['LOG_LEVEL'],
    credentials: [{ name: 'A', source: 'env:A' }],
    repoToken: { source: 'env:T', origins: ['https://example.com'], required: false },
    resources: {
      memory: '2g',
      memorySwap: '2g',
      cpus: 1,
      pids: 4096,
      disk: '1g',
      output: '64m',
      cache: '1g',
    },
    capAdd: ['NET_RAW'],
    userNamespace: 'host',
    mounts: [{ source: '/srv', target: '/srv', readOnly: true }],
    context: '/ctx',
    caches: [{ name: 'npm', target: '/home/demo/.npm' }],
    hosts: ['local'],
    hostLabels: { gpu: 'yes' },
    notify: [{ url: 'https://hooks.example.com/x', secret: 'env:H', outcomes: ['failed'] }],
    maxConcurrent: 2,
    schedule: {
      cron: '0 * * * *',
      timezone: 'UTC',
      workUnit: 'w',
      overlap: 'skip',
      catchUp: 'none',
      next: '2026-12-05T02:00:00.000Z',
      failed: 'f',
    },
  };

  it('names every field of the schema, and refuses what the schema refuses: each one missing or of another type', () => {
    expect(Object.keys(AGENT_SHAPE).sort()).toEqual(Object.keys(agentViewSchema.shape).sort());
    expect(agentViewSchema.safeParse(FULL).success).toBe(true);
    expect(shapeProblem(FULL, { object: AGENT_SHAPE }, '')).toBeUndefined();
    for (const [key, shape] of Object.entries(AGENT_SHAPE)) {
      const stringly =
        shape === 'string' ||
        (typeof shape === 'object' && 'optional' in shape && shape.optional === 'string');
      const wrong = { ...FULL, [key]: stringly ? 7 : 'seven' };
      expect(shapeProblem(wrong, { object: AGENT_SHAPE }, ''), key).toBeDefined();
      expect(agentViewSchema.safeParse(wrong).success, key).toBe(false);
      const without: Record<string, unknown> = { ...FULL };
      delete without[key];
      const optional = typeof shape === 'object' && 'optional' in shape;
      expect(shapeProblem(without, { object: AGENT_SHAPE }, '') === undefined, key).toBe(optional);
      expect(agentViewSchema.safeParse(without).success, key).toBe(optional);
    }
  });

  it('checks the fields inside: a label that is no text, a mount without readOnly', () => {
    const shape: Shape = { object: AGENT_SHAPE };
    expect(shapeProblem({ ...FULL, hostLabels: { gpu: 1 } }, shape, '')).toBe(
      'hostLabels.gpu is not a string',
    );
    expect(shapeProblem({ ...FULL, mounts: [{ source: '/a', target: '/b' }] }, shape, '')).toBe(
      'mounts[0].readOnly is missing',
    );
  });
});
