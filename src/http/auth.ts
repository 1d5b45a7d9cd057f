import { createHash, timingSafeEqual } from 'node:crypto';
import { resolveSource } from '../adapters/credentials.js';
import type { HttpScope } from '../config/http.js';
import type { HttpToken } from '../config/types.js';

/** A configured token: its name and scopes, and the SHA-256 of its value (the value itself is not kept). */
interface KnownToken {
  name: string;
  scopes: readonly HttpScope[];
  digest: Buffer;
}

/** Who made a request: the token's name and what it may do. */
export interface Caller {
  token: string;
  scopes: readonly HttpScope[];
}

export type Authentication =
  | { ok: true; caller: Caller }
  | { ok: false; reason: 'missing' | 'malformed' | 'unknown' };

/** Longest Authorization header looked at; a longer one is malformed, not hashed. */
const MAX_HEADER = 4096;

/**
 * The bearer tokens of the HTTP API. Values come from credential sources when the API starts; only
 * their SHA-256 is kept, and a presented token is hashed and compared with every known one in constant
 * time (all of them, whether one matched or not), so neither the comparison nor the number of
 * comparisons tells how close a guess was.
 */
export class Tokens {
  private constructor(private readonly known: KnownToken[]) {}

  /** Reads every token's source; throws (naming the token and its source, never a value) when one cannot be read. */
  static async resolve(tokens: readonly HttpToken[], env: NodeJS.ProcessEnv): Promise<Tokens> {
    const known: KnownToken[] = [];
    for (const token of tokens) {
      const value = await resolveSource(`daemon.http token ${token.name}`, token.source, env);
      known.push({ name: token.name, scopes: token.scopes, digest: digest(value.bytes()) });
    }
    return new Tokens(known);
  }

  authenticate(header: string | undefined): Authentication {
    if (header === undefined || header === '') return { ok: false, reason: 'missing' };
    const match = /^Bearer ([\x21-\x7e]+)$/.exec(header.length > MAX_HEADER ? '' : header);
    if (!match) return { ok: false, reason: 'malformed' };
    const presented = digest(Buffer.from(match[1] as string));
    let found: KnownToken | undefined;
    for (const token of this.known) {
      if (timingSafeEqual(presented, token.digest) && found === undefined) found = token;
    }
    return found
      ? { ok: true, caller: { token: found.name, scopes: found.scopes } }
      : { ok: false, reason: 'unknown' };
  }
}

/** `admin` may do everything; the others only what they name. */
export function allows(caller: Caller, scope: HttpScope): boolean {
  return caller.scopes.includes(scope) || caller.scopes.includes('admin');
}

function digest(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}
