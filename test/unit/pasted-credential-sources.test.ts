/**
 * A credential value pasted where a source's variable name or file path belongs (env:ghp_…,
 * file:ghp_…) is never repeated: not in doctor's checks nor in start's preflight warnings (which go
 * to the daemon's log, fix included), not by the agents view, validate or a session's error.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveSource } from '../../src/adapters/credentials.js';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { runPreflight } from '../../src/daemon/preflight.js';
import { checkHttpAndNotify } from '../../src/daemon/preflight-http.js';
import { describeAgent } from '../../src/sessions/agent-view.js';
import { passingPreflightPodman } from '../helpers/preflight-podman.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(cleanupAll);

const PASTED = 'ghp_16C7e42F292c6912E7710c838347Ae178B4a';
const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000' };

/** An engine that answers the cheap checks. */
const engine = passingPreflightPodman({ rootless: async () => true });

function settings(dir: string, agentExtra: string, daemonExtra = '') {
  const text =
    `daemon:\n  state_dir: ${join(dir, 'state')}\n${daemonExtra}` +
    `agents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n${agentExtra}`;
  return parseConfig(text, join(dir, 'agentd.yaml'), ENV, 1000);
}

describe('an env: source whose name looks like a pasted credential value', () => {
  it("is not repeated by start's preflight or doctor, in the message or the fix", async () => {
    const dir = makeTempDir('agentd-unit-pasted-');
    const results = await runPreflight({
      settings: settings(
        dir,
        `    credentials:\n      - { name: GH, source: "env:${PASTED}" }\n      - { name: OTHER, source: env:NO_SUCH_VARIABLE }\n`,
      ),
      podman: engine,
      env: ENV,
      depth: 'cheap',
      uid: 0,
    });
    const pasted = results.find((r) => r.check === 'credential demo/GH');
    expect(pasted).toMatchObject({ status: 'fail' });
    expect(pasted?.fix).toContain('write env:NAME');
    expect(JSON.stringify(results)).not.toContain(PASTED);
    // A name that is a name is still named, with where to set it.
    expect(results.find((r) => r.check === 'credential demo/OTHER')?.fix).toBe(
      "Set NO_SUCH_VARIABLE in the daemon's environment (systemd: EnvironmentFile=, e.g. /etc/agentd/agentd.env), or use a file: source",
    );
  });

  it('is not repeated by doctor’s checks of HTTP tokens and webhook secrets', async () => {
    const dir = makeTempDir('agentd-unit-pasted-');
    const results = await checkHttpAndNotify(
      settings(
        dir,
        `    notify:\n      - { url: "https://hooks.example.com/b", secret: "env:${PASTED}" }\n`,
        `  http:\n    listen: 127.0.0.1:0\n    tokens:\n      - { name: ci, source: "env:${PASTED}", scopes: [read] }\n`,
      ),
      ENV,
    );
    expect(results.find((r) => r.check === 'http token ci')).toMatchObject({ status: 'fail' });
    expect(results.find((r) => r.check === 'demo notify[0] secret')).toMatchObject({ status: 'fail' });
    expect(JSON.stringify(results)).not.toContain(PASTED);
  });
});

describe('an env: source whose name is a pasted value in one letter case', () => {
  // `openssl rand -hex 32` (which the README suggests for HTTP tokens) begins with a letter 6 times in 16,
  // and is then a valid variable name; an AWS access key id always is one.
  const HEX = 'a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3';
  const AKIA = 'AKIAIOSFODNN7EXAMPLE';

  it("is not repeated by the agents view, a session's error, start's preflight or doctor", async () => {
    const dir = makeTempDir('agentd-unit-pasted-');
    const config = settings(
      dir,
      `    credentials:\n      - { name: HEX, source: "env:${HEX}" }\n      - { name: KEY, source: ${AKIA} }\n`,
      `  http:\n    listen: 127.0.0.1:0\n    tokens:\n      - { name: ci, source: "env:${HEX}", scopes: [read] }\n`,
    );
    const [demo] = config.agents;
    if (demo === undefined) return expect.fail('no agent');
    const seen: string[] = [JSON.stringify(describeAgent(demo))];
    for (const { name, source } of demo.credentials) {
      seen.push(await resolveSource(name, source, ENV).then(String, (e: unknown) => (e as Error).message));
    }
    const results = await runPreflight({
      settings: config,
      podman: engine,
      env: ENV,
      depth: 'cheap',
      uid: 0,
    });
    seen.push(JSON.stringify(results), JSON.stringify(await checkHttpAndNotify(config, ENV)));
    for (const text of seen) {
      expect(text).not.toContain(HEX.slice(0, 16));
      expect(text).not.toContain(AKIA);
    }
    expect(seen[1]).toContain('looks like a credential value pasted in place of a name (not repeated here)');
  });

  it('leaves names of words a name, shown as written', async () => {
    for (const name of [
      'my_service_api_token',
      'GITHUB_TOKEN_FOR_CI_2024',
      'MYSERVICEAPITOKEN',
      'AGENTD_E2E_TOKEN_CI',
    ]) {
      const message = await resolveSource('T', { kind: 'env', name, raw: `env:${name}` }, {}).then(
        String,
        (e: unknown) => (e as Error).message,
      );
      expect(message).toContain(`environment variable ${name} (source env:${name}) is not set`);
    }
  });
});

describe('an env: source that is no variable name but a pasted credential value', () => {
  it('is refused without being repeated (tokens with - or . are no names at all)', () => {
    const dir = makeTempDir('agentd-unit-pasted-');
    for (const token of [
      'sk-proj-AbCdEf0123456789xyzXYZ',
      'xoxb-1234-5678-abcdefABCDEF',
      'glpat-abcdefghij0123456789',
      'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc',
    ]) {
      let error: unknown;
      try {
        settings(dir, `    credentials:\n      - { name: K, source: "env:${token}" }\n`);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const message = (error as ConfigError).message;
      expect(message).toContain('looks like a credential value pasted after env:');
      expect(message).not.toContain(token.slice(0, 12));
    }
    // A short one that is no name is still named: it is a typo, not a value.
    expect(() => settings(dir, '    credentials:\n      - { name: K, source: "env:my-var" }\n')).toThrow(
      '"my-var" is not a valid environment variable name',
    );
  });
});

describe('a file: source whose path looks like a pasted credential value', () => {
  it('is refused without being repeated, for every kind of source', () => {
    const dir = makeTempDir('agentd-unit-pasted-');
    for (const [agentExtra, daemonExtra, path] of [
      [
        `    credentials:\n      - { name: GH, source: "file:${PASTED}" }\n`,
        '',
        'agents[0].credentials[0].source',
      ],
      [`    repo: https://example.com/r.git\n    repo_token: "file:${PASTED}"\n`, '', 'agents[0].repo_token'],
      [
        `    notify:\n      - { url: "https://hooks.example.com/b", secret: "file:${PASTED}" }\n`,
        '',
        'agents[0].notify[0].secret',
      ],
      [
        '',
        `  http:\n    listen: 127.0.0.1:0\n    tokens:\n      - { name: ci, source: "file:${PASTED}", scopes: [read] }\n`,
        'daemon.http.tokens[0].source',
      ],
    ] as const) {
      let error: unknown;
      try {
        settings(dir, agentExtra, daemonExtra);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const problems = (error as ConfigError).problems;
      expect(problems.map((p) => p.path)).toEqual([path]);
      expect(problems[0]?.message).toContain('looks like a credential value pasted after file:');
      expect((error as ConfigError).message).not.toContain(PASTED);
    }
  });

  it('accepts file names that are names, and such a name written with its directory', () => {
    const dir = makeTempDir('agentd-unit-pasted-');
    const [demo] = settings(
      dir,
      `    credentials:\n      - { name: A, source: "file:./${PASTED}" }\n      - { name: B, source: file:GitHubToken2024.txt }\n      - { name: C, source: file:github_token_for_ci }\n`,
    ).agents;
    if (demo === undefined) return expect.fail('no agent');
    expect(demo.credentials.map((c) => c.source.kind)).toEqual(['file', 'file', 'file']);
    // Written so, it is the operator's own path: shown as written.
    expect(describeAgent(demo).credentials[0]?.source).toBe(`file:./${PASTED}`);
  });
});

describe('a key or key file pasted in place of a path', () => {
  const KEY =
    '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----';
  const JSON_KEY = '{"type": "service_account", "private_key_id": "0123456789abcdefSECRETabcdef"}';
  const yaml = (text: string) => JSON.stringify(text);

  it('is refused without being repeated: file: sources, an ssh identity, the TLS key', () => {
    const dir = makeTempDir('agentd-unit-pasted-');
    const cases: [agentExtra: string, daemonExtra: string, path: string][] = [
      [
        `    credentials:\n      - { name: K, source: ${yaml(`file:${KEY}`)} }\n`,
        '',
        'agents[0].credentials[0].source',
      ],
      [
        `    credentials:\n      - { name: K, source: ${yaml(`file:${JSON_KEY}`)} }\n`,
        '',
        'agents[0].credentials[0].source',
      ],
      [
        '',
        `hosts:\n  - { name: far, url: "ssh://agentd@far.example/run/podman/podman.sock", identity: ${yaml(KEY)} }\n`,
        'hosts[0].identity',
      ],
      [
        '',
        `  http:\n    listen: 127.0.0.1:0\n    tokens:\n      - { name: ci, source: env:CI_TOKEN, scopes: [read] }\n    tls: { cert: /etc/agentd/cert.pem, key: ${yaml(KEY)} }\n`,
        'daemon.http.tls.key',
      ],
    ];
    for (const [agentExtra, daemonExtra, path] of cases) {
      // hosts: is a top-level key, the rest are the daemon's.
      const [top, daemon] = daemonExtra.startsWith('hosts:') ? [daemonExtra, ''] : ['', daemonExtra];
      let error: unknown;
      try {
        parseConfig(
          `${top}daemon:\n  state_dir: ${join(dir, 'state')}\n${daemon}agents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n${agentExtra}`,
          join(dir, 'agentd.yaml'),
          ENV,
          1000,
        );
      } catch (caught) {
        error = caught;
      }
      expect(error, path).toBeInstanceOf(ConfigError);
      const { problems, message } = error as ConfigError;
      expect(problems.map((p) => p.path)).toContain(path);
      expect(message).toMatch(/looks like a (key|credential value) pasted/);
      expect(message).not.toContain('b3BlbnNzaC1rZXkt');
      expect(message).not.toContain('SECRET');
    }
  });
});

describe("a webhook's URL that does not parse", () => {
  it('is not repeated: its path or query may hold its key', () => {
    const dir = makeTempDir('agentd-unit-pasted-');
    // Slack's URL without its scheme: its last segment is the key.
    const url = 'hooks.slack.com/services/T00000000/B00000000/XXXXsecretXXXXsecretXXXX';
    let error: unknown;
    try {
      settings(dir, `    notify:\n      - { url: "${url}", secret: env:HOOK_SECRET }\n`);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const { problems, message } = error as ConfigError;
    expect(problems.map((p) => p.path)).toEqual(['agents[0].notify[0].url']);
    expect(message).toContain('is not a URL (not repeated here');
    expect(message).not.toContain('XXXXsecret');
  });
});
