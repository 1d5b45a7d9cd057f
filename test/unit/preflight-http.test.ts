import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ensurePrivateDir } from '../../src/adapters/ownership.js';
import { parseConfig } from '../../src/config/load.js';
import type { CheckResult } from '../../src/daemon/preflight.js';
import { checkHttpAndNotify } from '../../src/daemon/preflight-http.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';
import { selfSignedCertificate } from '../helpers/tls.js';

afterEach(cleanupAll);

const TOKEN = 'doctor-token-0123456789abcdef-value';
const SHORT = 'tiny';
const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000', GOOD_TOKEN: TOKEN, SHORT_TOKEN: SHORT };

function settings(dir: string, daemon: string, agentExtra = '') {
  const text = `daemon:\n${daemon}\nagents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n${agentExtra}`;
  return parseConfig(text, join(dir, 'agentd.yaml'), ENV, 1000);
}

function row(results: CheckResult[], check: string): CheckResult {
  const found = results.find((r) => r.check === check);
  if (!found) throw new Error(`no ${check} in ${JSON.stringify(results, null, 2)}`);
  return found;
}

async function listening(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { server, port: address.port };
}

describe('doctor: HTTP API and notification checks', () => {
  it('passes good tokens and a free loopback port, and never shows a value', async () => {
    const dir = makeTempDir('agentd-unit-doctor-http-');
    const results = await checkHttpAndNotify(
      settings(
        dir,
        '  http:\n    listen: 127.0.0.1:0\n    tokens:\n      - { name: ci, source: "env:GOOD_TOKEN", scopes: [trigger] }',
      ),
      ENV,
    );
    expect(row(results, 'http token ci')).toMatchObject({ status: 'ok' });
    expect(row(results, 'http listen')).toMatchObject({ status: 'ok', message: '127.0.0.1:0: free' });
    expect(JSON.stringify(results)).not.toContain(TOKEN);
  });

  it('names an unset token source, a short token, a port in use and clear text off loopback', async () => {
    const dir = makeTempDir('agentd-unit-doctor-http-');
    const { server, port } = await listening();
    try {
      const busy = await checkHttpAndNotify(
        settings(
          dir,
          `  http:\n    listen: 127.0.0.1:${port}\n    tokens:\n` +
            '      - { name: gone, source: "env:NO_SUCH_TOKEN", scopes: [read] }\n' +
            '      - { name: short, source: "env:SHORT_TOKEN", scopes: [read] }',
        ),
        ENV,
      );
      expect(row(busy, 'http token gone')).toMatchObject({
        status: 'fail',
        message: expect.stringContaining('NO_SUCH_TOKEN'),
        fix: expect.stringContaining('Set NO_SUCH_TOKEN'),
      });
      expect(row(busy, 'http token short')).toMatchObject({
        status: 'warn',
        message: expect.stringContaining('only 4 byte(s)'),
      });
      expect(row(busy, 'http listen')).toMatchObject({
        status: 'warn',
        message: expect.stringContaining('in use'),
      });
      expect(JSON.stringify(busy)).not.toContain(SHORT);
    } finally {
      server.close();
    }
    const open = await checkHttpAndNotify(
      settings(
        dir,
        '  http:\n    listen: 0.0.0.0:0\n    tokens:\n      - { name: ci, source: "env:GOOD_TOKEN", scopes: [read] }',
      ),
      ENV,
    );
    expect(open.filter((r) => r.check === 'http listen').map((r) => r.status)).toEqual(['warn', 'ok']);
    expect(row(open, 'http listen').fix).toContain('daemon.http.tls');
  });

  it('fails a token no client can send (empty, a space, a control character, non-ASCII), never showing it', async () => {
    const dir = makeTempDir('agentd-unit-doctor-http-');
    const twoLines = join(dir, 'two-lines');
    writeFileSync(twoLines, 'file-token-0123456789abcdef\n\n', { mode: 0o600 });
    const values = {
      EMPTY: '',
      SPACE: 'space token 0123456789abcdef',
      TAB: 'tab\ttoken-0123456789abcdef',
      UNICODE: 'unicode-tökén-0123456789abcdef',
    };
    const tokens = Object.keys(values)
      .map((name) => `      - { name: ${name.toLowerCase()}, source: "env:${name}", scopes: [read] }\n`)
      .join('');
    const results = await checkHttpAndNotify(
      settings(
        dir,
        `  http:\n    listen: 127.0.0.1:0\n    tokens:\n${tokens}      - { name: lines, source: "file:${twoLines}", scopes: [read] }`,
      ),
      { ...ENV, ...values },
    );
    const problems = {
      empty: 'is empty',
      space: 'contains a space',
      tab: 'contains a control character',
      unicode: 'contains a non-ASCII character',
      lines: 'contains a control character',
    };
    for (const [name, problem] of Object.entries(problems)) {
      const result = row(results, `http token ${name}`);
      expect(result).toMatchObject({
        status: 'fail',
        message: expect.stringContaining(problem),
        fix: expect.stringContaining('printable ASCII without spaces'),
      });
      expect(result.message).toContain('Authorization: Bearer');
    }
    expect(row(results, 'http token lines').message).toContain(`file:${twoLines}`);
    const shown = JSON.stringify(results);
    for (const value of Object.values(values).filter(Boolean)) expect(shown).not.toContain(value);
    expect(shown).not.toContain('file-token-0123456789abcdef');
  });

  it('fails a unix socket directory that start refuses (others may write to it), as start does', async () => {
    const dir = makeTempDir('agentd-unit-doctor-http-');
    const unix = (socketDir: string) =>
      settings(
        dir,
        `  http:\n    listen: unix:${join(socketDir, 'http.sock')}\n    tokens:\n      - { name: ci, source: "env:GOOD_TOKEN", scopes: [read] }`,
      );
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const result = row(await checkHttpAndNotify(unix(open), ENV), 'http listen');
    expect(result).toMatchObject({
      status: 'fail',
      message: expect.stringContaining(`HTTP socket directory ${open}`),
      fix: `chmod 700 ${open}`,
    });
    expect(result.message).toContain('group or others may write to it');
    // Start refuses it with the same words.
    expect(() => ensurePrivateDir(open, 'HTTP socket directory')).toThrow('group or others may write to it');
    chmodSync(open, 0o700);
    expect(row(await checkHttpAndNotify(unix(open), ENV), 'http listen')).toMatchObject({ status: 'ok' });
    expect(row(await checkHttpAndNotify(unix(join(dir, 'new')), ENV), 'http listen')).toMatchObject({
      status: 'ok',
      message: expect.stringContaining('agentd creates'),
    });
    const file = join(dir, 'file');
    writeFileSync(file, '');
    expect(row(await checkHttpAndNotify(unix(file), ENV), 'http listen')).toMatchObject({
      status: 'fail',
      message: expect.stringContaining('is not a directory'),
    });
  });

  it('loads a TLS pair, and fails a missing file or a key of another certificate', async () => {
    const dir = makeTempDir('agentd-unit-doctor-tls-');
    const a = selfSignedCertificate(dir, 'a');
    const b = selfSignedCertificate(dir, 'b');
    const http = (cert: string, key: string) =>
      `  http:\n    listen: 127.0.0.1:0\n    tls: { cert: "${cert}", key: "${key}" }\n    tokens:\n      - { name: ci, source: "env:GOOD_TOKEN", scopes: [read] }`;
    expect(row(await checkHttpAndNotify(settings(dir, http(a.cert, a.key)), ENV), 'http tls').status).toBe(
      'ok',
    );
    const mismatched = row(await checkHttpAndNotify(settings(dir, http(a.cert, b.key)), ENV), 'http tls');
    expect(mismatched).toMatchObject({ status: 'fail', fix: expect.stringContaining('private key') });
    const missing = row(
      await checkHttpAndNotify(settings(dir, http(join(dir, 'none.crt'), a.key)), ENV),
      'http tls',
    );
    expect(missing).toMatchObject({ status: 'fail', message: expect.stringContaining('ENOENT') });
    expect(missing.message).toContain('daemon.http.tls.cert');
    const garbage = join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a PEM file\n');
    expect(row(await checkHttpAndNotify(settings(dir, http(garbage, a.key)), ENV), 'http tls')).toMatchObject(
      {
        status: 'fail',
        message: expect.stringContaining(`${garbage} (daemon.http.tls.cert) is not a PEM certificate`),
        fix: expect.stringContaining('daemon.http.tls.cert'),
      },
    );
    expect(
      row(await checkHttpAndNotify(settings(dir, http(a.cert, garbage)), ENV), 'http tls'),
    ).toMatchObject({
      status: 'fail',
      message: expect.stringContaining(`${garbage} (daemon.http.tls.key) is not a PEM private key`),
      fix: expect.stringContaining('daemon.http.tls.key'),
    });
  });

  it('checks the secret source of every notification target, the daemon’s and each agent’s', async () => {
    const dir = makeTempDir('agentd-unit-doctor-notify-');
    const secretFile = join(dir, 'hook-secret');
    writeFileSync(secretFile, 'hook-secret-value\n', { mode: 0o600 });
    const results = await checkHttpAndNotify(
      settings(
        dir,
        `  notify:\n    - { url: "https://hooks.example.com/a", secret: "file:${secretFile}" }`,
        '    notify:\n      - { url: "https://hooks.example.com/b", secret: "file:./missing-secret" }\n',
      ),
      ENV,
    );
    expect(row(results, 'daemon.notify[0] secret')).toMatchObject({ status: 'ok' });
    expect(row(results, 'demo notify[0] secret')).toMatchObject({
      status: 'fail',
      message: expect.stringContaining(join(dir, 'missing-secret')),
      fix: expect.stringContaining('Create'),
    });
    expect(JSON.stringify(results)).not.toContain('hook-secret-value');
  });

  it('fails a notification secret that resolves to an empty value: the notifier signs nothing with it', async () => {
    const dir = makeTempDir('agentd-unit-doctor-notify-empty-');
    const secretFile = join(dir, 'hook-secret');
    writeFileSync(secretFile, '\n', { mode: 0o600 });
    const results = await checkHttpAndNotify(
      settings(
        dir,
        `  notify:\n    - { url: "https://hooks.example.com/a", secret: "file:${secretFile}" }`,
        '    notify:\n      - { url: "https://hooks.example.com/b", secret: "env:EMPTY_HOOK_KEY" }\n',
      ),
      { ...ENV, EMPTY_HOOK_KEY: '' },
    );
    expect(row(results, 'daemon.notify[0] secret')).toMatchObject({
      status: 'fail',
      message: `file:${secretFile} resolves to an empty value: a signature keyed with nothing can be made by anyone, so no notification is sent to this webhook`,
      fix: expect.stringContaining(`Write the key into ${secretFile}`),
    });
    expect(row(results, 'demo notify[0] secret')).toMatchObject({
      status: 'fail',
      message: expect.stringContaining('env:EMPTY_HOOK_KEY resolves to an empty value'),
      fix: expect.stringContaining('env:EMPTY_HOOK_KEY'),
    });
  });
});
