import { MAX_SECRET_BYTES } from '../constants.js';

/**
 * All of a session's credential values (and its repo token) travel as ONE Podman secret, so a session
 * costs the same podman calls whatever the number of its credentials. The root setup step splits it
 * (src/runner/setup-script.ts) and an adopted session's runner splits the container's own copy
 * (unbundle) to mask its output with exactly the values it received.
 *
 * The bundle: one header line `agentd1 NAME SIZE NAME SIZE ...` (names are variable names or
 * `.repo_token`, sizes in bytes), then the values' bytes one after the other, nothing between them.
 * Podman refuses a secret of 512,000 bytes or more, so a larger bundle is cut into chunks that go in
 * as `bundle.0`, `bundle.1`, ... (their bytes concatenated are the bundle).
 */
export const BUNDLE_TAG = 'agentd1';
/** The file name of chunk `index` of a bundle, under the secret mount dir. */
export const bundleChunkName = (index: number): string => `bundle.${index}`;

export interface BundledValue {
  /** The variable the command gets, or `.repo_token`. */
  name: string;
  bytes: Uint8Array;
}

/** The bundle of these values, in chunks Podman accepts (none when there is no value). */
export function bundleCredentials(values: readonly BundledValue[]): Buffer[] {
  if (values.length === 0) return [];
  const header = [BUNDLE_TAG, ...values.flatMap((v) => [v.name, String(v.bytes.byteLength)])].join(' ');
  const whole = Buffer.concat([
    Buffer.from(`${header}\n`, 'utf8'),
    ...values.map((v) => Buffer.from(v.bytes)),
  ]);
  const chunks: Buffer[] = [];
  for (let at = 0; at < whole.length; at += MAX_SECRET_BYTES) {
    chunks.push(whole.subarray(at, at + MAX_SECRET_BYTES));
  }
  return chunks;
}

/**
 * The values in a container's copies of its secrets (file name → bytes): the bundle's chunks split
 * into their values. Files that are not chunks of a bundle (a container made by an agentd before
 * bundles) are values themselves. Throws when a bundle is cut short or malformed.
 */
export function unbundle(files: ReadonlyMap<string, Buffer>): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; files.has(bundleChunkName(i)); i++) chunks.push(files.get(bundleChunkName(i)) as Buffer);
  const others = [...files]
    .filter(([name]) => !/^bundle\.\d+$/.test(name))
    .map(([, bytes]) => Buffer.from(bytes));
  if (chunks.length === 0) return others;
  const whole = Buffer.concat(chunks);
  const newline = whole.indexOf(10);
  const words = newline === -1 ? [] : whole.subarray(0, newline).toString('utf8').split(' ');
  if (words[0] !== BUNDLE_TAG || words.length % 2 !== 1) {
    throw new Error('the credential bundle in the container has no valid header');
  }
  const values: Buffer[] = [];
  let at = newline + 1;
  for (let i = 2; i < words.length; i += 2) {
    const size = Number(words[i]);
    if (!Number.isSafeInteger(size) || size < 0 || at + size > whole.length) {
      throw new Error('the credential bundle in the container is cut short');
    }
    values.push(whole.subarray(at, at + size));
    at += size;
  }
  if (at !== whole.length)
    throw new Error('the credential bundle in the container has bytes after its values');
  return [...values, ...others];
}
