/**
 * `file:` credential sources (src/adapters/credentials.ts): a regular file's bytes; anything else
 * refused at once, naming the source, instead of a read that never ends or never stops.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CredentialFiles,
  type ReadFile,
  resolveCredentials,
  resolveSource,
} from '../../src/adapters/credentials.js';
import { parseConfig } from '../../src/config/load.js';
import { SETUP_SCRIPT } from '../../src/runner/setup-script.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(() => cleanupAll());

const source = (path: string) => ({ kind: 'file' as const, path, raw: `file:${path}` });

describe('file: credential sources', () => {
  it('read a regular file as bytes, without one final line ending', async () => {
    const file = join(makeTempDir('agentd-unit-cred-'), 'token');
    writeFileSync(file, 'v@lue\r\n', { mode: 0o600 });
    const value = await resolveSource('TOKEN', source(file), {});
    expect(Buffer.from(value.bytes()).toString()).toBe('v@lue');
  });

  it('refuse a FIFO at once: nobody writing to it would hold the session for ever', async () => {
    const fifo = join(makeTempDir('agentd-unit-cred-'), 'fifo');
    execFileSync('mkfifo', [fifo]);
    const started = Date.now();
    await expect(resolveSource('TOKEN', source(fifo), {})).rejects.toThrow(
      `credential TOKEN: file ${fifo} (source file:${fifo}) is a FIFO, not a regular file; point the source at a file`,
    );
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('refuse a device and a directory', async () => {
    await expect(resolveSource('TOKEN', source('/dev/zero'), {})).rejects.toThrow(
      /is a device, not a regular file/,
    );
    await expect(resolveSource('TOKEN', source(makeTempDir('agentd-unit-cred-')), {})).rejects.toThrow(
      /is a directory, not a regular file/,
    );
  });
});

describe('env: credential sources', () => {
  it('name an unset variable, but not one whose name looks like a pasted value', async () => {
    await expect(
      resolveSource('TOKEN', { kind: 'env', name: 'GH_TOKEN', raw: 'env:GH_TOKEN' }, {}),
    ).rejects.toThrow('credential TOKEN: environment variable GH_TOKEN (source env:GH_TOKEN) is not set');
    // A long name in one case is a name.
    const long = { kind: 'env' as const, name: 'my_service_api_token', raw: 'env:my_service_api_token' };
    await expect(resolveSource('TOKEN', long, {})).rejects.toThrow(
      'environment variable my_service_api_token',
    );
    const pasted = 'ghp_16C7e42F292c6912E7710c838347Ae178B4a';
    const error = await resolveSource('TOKEN', { kind: 'env', name: pasted, raw: `env:${pasted}` }, {}).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toContain(
      'looks like a credential value pasted in place of a name (not repeated here)',
    );
    expect(error?.message).not.toContain(pasted);
    expect(error?.message).not.toContain('16C7e42F');
  });
});

describe('file: credential sources on a mount that hangs', () => {
  /** A reader whose reads of `hung` never end until `answer()` (a network mount that stopped answering). */
  function hungMount() {
    const calls: string[] = [];
    let answer: () => void = () => {};
    const answered = new Promise<void>((resolve) => {
      answer = resolve;
    });
    const read: ReadFile = async (_name, { path }) => {
      calls.push(path);
      if (path === 'hung') await answered;
      return Buffer.from(`value of ${path}`);
    };
    return { calls, answer, read };
  }

  it('end at their deadline with the reason, holding one read (one thread) however many sessions wait', async () => {
    const mount = hungMount();
    const files = new CredentialFiles(mount.read, 200);
    const started = Date.now();
    const results = await Promise.allSettled(
      ['hung', 'a', 'b', 'c'].map((path) => resolveSource('TOKEN', source(path), {}, { files })),
    );
    expect(Date.now() - started).toBeLessThan(2000);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
    expect(String((results[0] as PromiseRejectedResult).reason)).toContain(
      'credential TOKEN: reading file hung (source file:hung) did not finish within 0.2s',
    );
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/check the mount it is on/);
    // Only the hung read reached the file system: the others waited behind it instead of each holding a thread.
    expect(mount.calls).toEqual(['hung']);

    // The mount answers again: the reads queued behind it run, and new ones too.
    mount.answer();
    const value = await resolveSource('TOKEN', source('d'), {}, { files });
    expect(Buffer.from(value.bytes()).toString()).toBe('value of d');
    expect(mount.calls).toEqual(['hung', 'a', 'b', 'c', 'd']);
  });

  it('stop waiting when the session is cancelled', async () => {
    const mount = hungMount();
    const files = new CredentialFiles(mount.read, 60_000);
    const cancel = new AbortController();
    const waiting = resolveSource('TOKEN', source('hung'), {}, { files, signal: cancel.signal });
    const started = Date.now();
    setTimeout(() => cancel.abort(), 20);
    await expect(waiting).rejects.toThrow('credential TOKEN: cancelled while its file was read');
    expect(Date.now() - started).toBeLessThan(1000);
    mount.answer();
  });
});

describe('file: credential sources that read on past their size', () => {
  // /proc/self/pagemap says 0 bytes and reads on for hundreds of GB: readFile, which trusts a stat size
  // of 0 to mean "read to the end", grew the daemon by 200 MB a second and held the read queue for ever.
  it.skipIf(!existsSync('/proc/self/pagemap'))(
    'are refused once past 16 MiB, naming the source, with memory bounded',
    async () => {
      const before = process.memoryUsage().arrayBuffers;
      // The daemon's own reader and deadline (10 s): before, the read outlived it, still growing.
      await expect(resolveSource('TOKEN', source('/proc/self/pagemap'), {})).rejects.toThrow(
        'credential TOKEN: file /proc/self/pagemap (source file:/proc/self/pagemap) reads on past 16777216 bytes though its size says 0',
      );
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(256 * 1024 * 1024);
    },
  );
});

describe('credential values with a NUL byte', () => {
  // The setup step's shell drops a NUL byte: the command got "abcdefgh..." for "abcd\0efgh...", which
  // masking did not know, and printed it in the clear into the session log.
  it('are refused, naming the credential and the source, never the value', async () => {
    const dir = makeTempDir('agentd-unit-cred-nul-');
    const nul = join(dir, 'nul');
    writeFileSync(nul, 'abcd\0efghijklmnop\n');
    writeFileSync(join(dir, 'fine'), 'fine-value-1234\n');
    const text = (credentials: string, token = 'fine') =>
      [
        'agents:',
        '  - name: demo',
        '    image: localhost/agentd-base:bookworm',
        '    command: ["run"]',
        '    repo: https://git.example.com/org/app.git',
        `    repo_token: file:${join(dir, token)}`,
        '    credentials:',
        credentials,
      ].join('\n');
    const agentOf = (yaml: string) => {
      const agent = parseConfig(yaml, join(dir, 'agentd.yaml'), { HOME: '/home/u' }, 0).agents[0];
      if (agent === undefined) throw new Error('no agent');
      return agent;
    };
    const error = (credentials: string, token?: string) =>
      resolveCredentials(agentOf(text(credentials, token)), {}).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    const fine = `      - { name: FINE, source: "file:${join(dir, 'fine')}" }`;
    const credential = await error(`${fine}\n      - { name: BIN, source: "file:${nul}" }`);
    expect(credential?.message).toBe(
      `credential BIN: the value of file:${nul} holds a NUL byte, which an environment variable cannot carry (the agent would be given the value without it); keep NUL bytes out of the value, e.g. encode a binary value in base64`,
    );
    const token = await error(fine, 'nul');
    expect(token?.message).toMatch(
      new RegExp(
        `^credential repo_token: the value of file:${nul} holds a NUL byte, which the repo token's header cannot`,
      ),
    );
    for (const e of [credential, token]) expect(e?.message).not.toContain('efghijklmnop');
    // Without one, the bytes arrive exactly.
    const resolved = await resolveCredentials(agentOf(text(fine)), {});
    expect(resolved.credentials[0]?.value.bytes().toString()).toBe('fine-value-1234');
  });
});

describe('credential values longer than one environment variable holds', () => {
  // Linux refuses an exec whose environment has a string over 128 KiB (MAX_ARG_STRLEN, NAME=value and
  // its NUL): a 511,999-byte value passed Podman's limit, and the session ended failed, "command cannot
  // be executed: sh ... check its permissions".
  it('are refused, naming the credential, the source and the limit, up to which a value passes', async () => {
    const dir = makeTempDir('agentd-unit-cred-long-');
    const file = (name: string, bytes: number) => {
      writeFileSync(join(dir, name), 'v'.repeat(bytes));
      return `file:${join(dir, name)}`;
    };
    const agent = (credentials: string, token?: string) => {
      const yaml = [
        'agents:',
        '  - name: demo',
        '    image: localhost/agentd-base:bookworm',
        '    command: ["run"]',
        '    repo: https://git.example.com/org/app.git',
        ...(token === undefined ? [] : [`    repo_token: ${token}`]),
        '    credentials:',
        credentials,
      ].join('\n');
      const parsed = parseConfig(yaml, join(dir, 'agentd.yaml'), { HOME: '/home/u' }, 0).agents[0];
      if (parsed === undefined) throw new Error('no agent');
      return parsed;
    };
    const error = (credentials: string, token?: string) =>
      resolveCredentials(agent(credentials, token), {}).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    // BIG=value and its NUL: 131,072 bytes.
    const fits = file('fits', 131_067);
    const resolved = await resolveCredentials(agent(`      - { name: BIG, source: "${fits}" }`), {});
    expect(resolved.credentials[0]?.value.byteLength).toBe(131_067);
    const over = file('over', 131_068);
    expect((await error(`      - { name: BIG, source: "${over}" }`))?.message).toBe(
      `credential BIG: the value of ${over} is 131068 bytes, more than an environment variable can hold (131067 bytes: Linux's limit on one variable is 128 KiB, its name included), so the command could not be started; hand a value this large to the agent as a file (a read-only mount) instead`,
    );
    // The repo token goes in GIT_CONFIG_VALUE_0=Authorization: Bearer TOKEN (the limit counts that).
    expect(SETUP_SCRIPT).toContain('GIT_CONFIG_VALUE_0="Authorization: Bearer $tok"');
    const small = `      - { name: SMALL, source: "${file('small', 8)}" }`;
    expect(await error(small, file('token-fits', 131_030))).toBeUndefined();
    expect((await error(small, file('token-over', 131_031)))?.message).toMatch(
      /^credential repo_token: the value of file:\S+ is 131031 bytes, more than the repo token's header can hold \(131030 bytes/,
    );
  });
});

describe("an agent's credentials past what a command's environment holds", () => {
  // 2 MiB in all (a quarter of the usual 8 MiB stack): 20 values of 120 KB passed every other check,
  // and the setup step's own tail and cat failed with E2BIG while it exported them ("git clone ...
  // failed: tail: Argument list too long" after 21 s).
  it('are refused at the credential that crosses it, naming it and its source', async () => {
    const dir = makeTempDir('agentd-unit-cred-total-');
    const file = join(dir, 'value');
    writeFileSync(file, 'v'.repeat(128_000));
    const agent = (count: number) => {
      const yaml = [
        'agents:',
        '  - name: demo',
        '    image: localhost/agentd-base:bookworm',
        '    command: ["run"]',
        '    repo: https://git.example.com/org/app.git',
        '    credentials:',
        ...Array.from({ length: count }, (_, i) => `      - { name: C_${i}, source: "file:${file}" }`),
      ].join('\n');
      const parsed = parseConfig(yaml, join(dir, 'agentd.yaml'), { HOME: '/home/u' }, 0).agents[0];
      if (parsed === undefined) throw new Error('no agent');
      return parsed;
    };
    // 15 of 128 KB and their names, the command and the 64 KiB kept for agentd's own: 1,985,748 bytes.
    expect((await resolveCredentials(agent(15), {})).credentials).toHaveLength(15);
    const error = await resolveCredentials(agent(17), {}).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toBe(
      `credential C_15: with the value of file:${file} the agent's credentials, env and command come to about 2113762 bytes, more than a command's environment can hold (2097152 bytes: Linux's limit under the usual 8 MiB stack), so the command could not be started; hand the large values to the agent as files (a read-only mount) instead`,
    );
  });
});
