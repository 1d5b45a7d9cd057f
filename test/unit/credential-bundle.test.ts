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

  it('refuses a bundle that is cut short or has no header', () => {
    const [chunk] = bundleCredentials([{ name: 'A', bytes: Buffer.from('abcdef') }]);
    expect(() => unbundle(files([(chunk as Buffer).subarray(0, -2)]))).toThrow(/cut short/);
    expect(() => unbundle(files([Buffer.from('garbage')]))).toThrow(/no valid header/);
  });
});
