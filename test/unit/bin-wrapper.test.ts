/**
 * The `agentd` command is bin/agentd, a small sh script that runs dist/cli/agentd.cjs (dist/cli/index.js
 * in one file, scripts/bundle-cli.mjs). Commands that only talk to the daemon over its Unix socket run
 * without NODE_EXTRA_CA_CERTS (Node 20 parses it at every start); the others keep it. Its list of
 * commands must be exactly the CLI's socket clients, and it must find the package through the symbolic
 * link npm installs it as.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandClass } from 'clipanion';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/cli.js';
import { ClientCommand } from '../../src/cli/client-command.js';
import { makeTempDir } from '../helpers/resources.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'agentd');

/** The commands the wrapper runs without NODE_EXTRA_CA_CERTS, from its `case` line. */
function wrapperClientCommands(): string[] {
  const script = readFileSync(BIN, 'utf8');
  const line = script.split('\n').find((l) => /^\s+agents \|.*\)$/.test(l));
  if (!line) throw new Error('bin/agentd: no case line of client commands');
  return line
    .replace(/\)\s*$/, '')
    .split('|')
    .map((w) => w.trim())
    .sort();
}

/** A package dir with the wrapper and a dist/cli/agentd.cjs that prints what it was given. */
function fakePackage(): { dir: string; linked: string; direct: string } {
  const dir = makeTempDir('agentd-bin-');
  const pkg = join(dir, 'lib', 'node_modules', 'agentd');
  mkdirSync(join(pkg, 'bin'), { recursive: true });
  mkdirSync(join(pkg, 'dist', 'cli'), { recursive: true });
  copyFileSync(BIN, join(pkg, 'bin', 'agentd'));
  writeFileSync(
    join(pkg, 'dist', 'cli', 'agentd.cjs'),
    'process.stdout.write(JSON.stringify({ ca: process.env.NODE_EXTRA_CA_CERTS ?? null, argv: process.argv.slice(2) }));\n',
  );
  // As a global install links it: PREFIX/bin/agentd -> ../lib/node_modules/agentd/bin/agentd.
  mkdirSync(join(dir, 'bin'));
  const linked = join(dir, 'bin', 'agentd');
  symlinkSync('../lib/node_modules/agentd/bin/agentd', linked);
  return { dir, linked, direct: join(pkg, 'bin', 'agentd') };
}

function runWrapper(path: string, args: string[]): { ca: string | null; argv: string[] } {
  const out = execFileSync(path, args, {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: '/etc/agentd-test-ca.pem' },
    encoding: 'utf8',
    // Node warns on stderr that the (missing) file cannot be loaded: kept out of the test's output.
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return JSON.parse(out) as { ca: string | null; argv: string[] };
}

describe('bin/agentd', () => {
  it('drops NODE_EXTRA_CA_CERTS for exactly the commands that are socket clients', async () => {
    const clients: string[] = [];
    for (const [name, load] of Object.entries(COMMANDS)) {
      const loaded = await load();
      const classes: CommandClass[] = Array.isArray(loaded) ? loaded : [loaded];
      const isClient = classes.map((c) => c.prototype instanceof ClientCommand);
      // A word is a client command only when every command under it is one.
      expect(new Set(isClient).size, `${name}: client and non-client commands under one word`).toBe(1);
      if (isClient[0]) clients.push(name);
    }
    expect(clients).toContain('trigger');
    expect(clients).not.toContain('start');
    expect(wrapperClientCommands()).toEqual(clients.sort());
  });

  it('runs the package it is linked from; client commands without the CA file, the rest with it', () => {
    const { linked, direct } = fakePackage();
    const args = ['trigger', 'demo', 'git://127.0.0.1:1/r.git', '--quiet', '--label', 'a b', ''];
    expect(runWrapper(linked, args)).toEqual({ ca: null, argv: args });
    expect(runWrapper(linked, ['status', '--json']).ca).toBeNull();
    // Run by its own path (a checkout), not through a link.
    expect(runWrapper(direct, ['wait', 'abc'])).toEqual({ ca: null, argv: ['wait', 'abc'] });
    expect(runWrapper(direct, ['doctor']).ca).toBe('/etc/agentd-test-ca.pem');
    for (const args of [['start', '--config', 'x.yaml'], ['doctor'], ['validate'], ['--version'], []]) {
      expect(runWrapper(linked, args)).toEqual({ ca: '/etc/agentd-test-ca.pem', argv: args });
    }
  });
});
