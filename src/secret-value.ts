import { inspect } from 'node:util';

/**
 * A resolved credential value. It lives in machine context between resolveCredentials and run, so
 * it hides itself from JSON (snapshots, inspection, logs) and from util.inspect. It sits at the base
 * of the layers: the adapter that resolves values and every layer above handle it.
 */
export class SecretValue {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
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
