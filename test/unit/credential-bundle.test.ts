/** One secret per session whatever its credentials (src/runner/credential-bundle.ts). */
import { describe, expect, it } from 'vitest';
import { MAX_SECRET_BYTES } from '../../src/constants.js';
import { bundleChunkName, bundleCredentials, unbundle } from '../../src/runner/credential-bundle.js';

const files = (chunks: Buffer[]) => new Map(chunks.map((chunk, i) => [bundleChunkName(i), chunk]));

describe('credential bundle', () => {
  it('holds every value byte-exact, in order, in one chunk', () => {
    const values = [
      { name: 'API_KEY', bytes: Buffer.from('sk-1234') },
      { name: 'PEM', bytes: Buffer.from('-----BEGIN KEY-----\r\nabc\r\n-----END KEY-----\n') },
      { name: 'LATIN1', bytes: Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]) },
      { name: '.repo_token', bytes: Buffer.from('ghp_token') },
    ];
    const chunks = bundleCredentials(values);
    expect(chunks).toHaveLength(1);
    expect(chunks[0]?.subarray(0, chunks[0].indexOf(10)).toString()).toBe(
      'agentd1 API_KEY 7 PEM 44 LATIN1 5 .repo_token 9',
    );
    expect(unbundle(files(chunks))).toEqual(values.map((v) => v.bytes));
  });

  it('is one secret for ten credentials and a repo token', () => {
    const values = Array.from({ length: 10 }, (_, i) => ({
      name: `CRED_${i}`,
      bytes: Buffer.from(`value-${i}-`.repeat(20)),
    }));
    values.push({ name: '.repo_token', bytes: Buffer.from('token') });
    expect(bundleCredentials(values)).toHaveLength(1);
  });

  it("is cut into chunks under Podman's limit only when it must be", () => {
    const big = Buffer.alloc(400_000, 0x61);
    const values = [
      { name: 'A', bytes: big },
      { name: 'B', bytes: Buffer.alloc(400_000, 0x62) },
    ];
    const chunks = bundleCredentials(values);
    expect(chunks).toHaveLength(2);
    for (const chunk of chunks) expect(chunk.length).toBeLessThanOrEqual(MAX_SECRET_BYTES);
    expect(unbundle(files(chunks))).toEqual(values.map((v) => v.bytes));
  });

  it('has nothing to bundle without values', () => {
    expect(bundleCredentials([])).toEqual([]);
    expect(unbundle(new Map())).toEqual([]);
  });

  it("reads a container's separate secret files (made before bundles) as values", () => {
    expect(unbundle(new Map([['API_KEY', Buffer.from('v1')]]))).toEqual([Buffer.from('v1')]);
  });

  it('keeps binary values byte-exact: every byte value, NUL and newlines included', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const values = [
      { name: 'BIN', bytes: all },
      { name: 'NL', bytes: Buffer.from('\n\n') },
      { name: 'NUL', bytes: Buffer.from([0]) },
    ];
    expect(unbundle(files(bundleCredentials(values)))).toEqual(values.map((v) => v.bytes));
  });

  it('cuts exactly at the limit, and a value may span chunks', () => {
    // A header of `agentd1 A N\n` and a value that fills the first chunk to the byte and spills over.
    const header = (n: number) => `agentd1 A ${n}\n`.length;
    const size = MAX_SECRET_BYTES - header(MAX_SECRET_BYTES) + 10;
    const value = { name: 'A', bytes: Buffer.alloc(size, 0x7a) };
    const chunks = bundleCredentials([value]);
    expect(chunks.map((c) => c.length)).toEqual([MAX_SECRET_BYTES, 10]);
    expect(unbundle(files(chunks))).toEqual([value.bytes]);
    // Missing its last chunk, it is cut short.
    expect(() => unbundle(files(chunks.slice(0, 1)))).toThrow(/cut short/);
  });

  it('refuses malformed bundles', () => {
    const bad = (text: string) => () => unbundle(files([Buffer.from(text)]));
    expect(bad('agentd1 A x\nabc')).toThrow(/cut short/);
    expect(bad('agentd1 A -1\nabc')).toThrow(/cut short/);
    expect(bad('agentd1 A\nabc')).toThrow(/no valid header/);
    expect(bad('agentd2 A 3\nabc')).toThrow(/no valid header/);
    expect(bad('agentd1 A 3 abc')).toThrow(/no valid header/);
    expect(bad('agentd1 A 1\nabc')).toThrow(/bytes after its values/);
  });

  it('refuses a bundle that is cut short or has no header', () => {
    const [chunk] = bundleCredentials([{ name: 'A', bytes: Buffer.from('abcdef') }]);
    expect(() => unbundle(files([(chunk as Buffer).subarray(0, -2)]))).toThrow(/cut short/);
    expect(() => unbundle(files([Buffer.from('garbage')]))).toThrow(/no valid header/);
  });
});
