import { inspect } from 'node:util';

/**
 * A resolved credential value: the bytes the agent is given, exactly as read (a file's bytes are
 * never decoded as text). It lives in machine context between resolveCredentials and run, so it hides
 * itself from JSON (snapshots, inspection, logs) and from util.inspect. It sits at the base of the
 * layers: the adapter that resolves values and every layer above handle it.
 */
export class SecretValue {
  readonly #bytes: Buffer;
  constructor(value: string | Uint8Array) {
    this.#bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  }
  /** A copy of the value's bytes. */
  bytes(): Buffer {
    return Buffer.from(this.#bytes);
  }
  get byteLength(): number {
    return this.#bytes.length;
  }
  toJSON(): string {
    return '[redacted]';
  }
  toString(): string {
    return '[redacted]';
  }
  [inspect.custom](): string {
    return '[redacted]';
  }
}
