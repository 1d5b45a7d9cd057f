import { createHash, timingSafeEqual } from 'node:crypto';
import { resolveSource } from '../adapters/credentials.js';
import type { HttpScope } from '../config/http.js';
import type { HttpToken } from '../config/types.js';
import { AgentdError } from '../errors.js';

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
      const unusable = unpresentableToken(token.source, value.bytes());
      if (unusable !== undefined) {
        throw new AgentdError(
          'CREDENTIAL_UNRESOLVED',
          `daemon.http token ${token.name}: ${unusable.message}. ${unusable.fix}`,
          { operation: 'open the HTTP API' },
        );
      }
      known.push({ name: token.name, scopes: token.scopes, digest: digest(value.bytes()) });
    }
    return new Tokens(known);
  }

  authenticate(header: string | undefined): Authentication {
    if (header === undefined || header === '') return { ok: false, reason: 'missing' };
    // The scheme is case-insensitive and may be followed by more than one space (RFC 7235, RFC 6750):
    // `bearer TOKEN`, as some clients send it, is the same token.
    const match = /^Bearer +([\x21-\x7e]+)$/i.exec(header.length > MAX_HEADER ? '' : header);
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

/**
 * Why a token's value can never be sent as `Authorization: Bearer VALUE` (what `authenticate` accepts:
 * printable ASCII, no space), and the fix; undefined when it can. Such a token would get every request
 * a 401 while start and doctor said it was fine. Names the token's source, never its value.
 */
export function unpresentableToken(
  source: HttpToken['source'],
  value: Uint8Array,
): { message: string; fix: string } | undefined {
  const problem =
    value.length === 0
      ? 'is empty'
      : value.includes(0x20)
        ? 'contains a space'
        : value.some((byte) => byte < 0x20 || byte === 0x7f)
          ? 'contains a control character (a tab, or a line ending other than one at its end)'
          : value.some((byte) => byte > 0x7e)
            ? 'contains a non-ASCII character'
            : undefined;
  if (problem === undefined) return undefined;
  return {
    message: `the value of ${source.raw} ${problem}: no client can send it as Authorization: Bearer TOKEN, so every request would get 401`,
    fix: 'Make the token printable ASCII without spaces, alone in its source, e.g. `openssl rand -hex 32`',
  };
}

/** `admin` may do everything; the others only what they name. */
export function allows(caller: Caller, scope: HttpScope): boolean {
  return caller.scopes.includes(scope) || caller.scopes.includes('admin');
}

function digest(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}
