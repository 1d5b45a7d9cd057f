/**
 * A seeded generator of hostile socket input: random bytes, random JSON, mutated requests, truncated
 * requests, odd encodings. The same seed always gives the same inputs, so a failure can be replayed.
 */
import { requestSchema } from '../../src/protocol/messages.js';

/** mulberry32: a tiny, fast 32-bit PRNG; plenty for fuzzing. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Fuzzer {
  private readonly random: () => number;
  constructor(seed: number) {
    this.random = mulberry32(seed);
  }

  int(max: number): number {
    return Math.floor(this.random() * max);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  bytes(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = this.int(256);
    return out;
  }

  string(maxLength: number): string {
    const alphabets = [
      'abcdefghijklmnopqrstuvwxyz0123456789',
      '{}[]":,\\\n\t ',
      '\u0000\u0001\u001f\u007f\u00e9\u2028\u2029\ud83d\ude00\ufffd',
      '0123456789abcdef',
    ];
    const alphabet = this.pick(alphabets);
    let out = '';
    const length = this.int(maxLength + 1);
    for (let i = 0; i < length; i++) out += alphabet[this.int(alphabet.length)];
    return out;
  }

  /** Any JSON value, nested up to depth. */
  json(depth: number): unknown {
    const kind = this.int(depth > 0 ? 9 : 6);
    switch (kind) {
      case 0:
        return null;
      case 1:
        return this.random() < 0.5;
      case 2:
        return this.pick([0, -1, 1, 1.5, 2 ** 53, -(2 ** 31), 1e308, -0]);
      case 3:
        return this.string(40);
      case 4:
        return this.pick(['hello', 'status', 'trigger', 'logs', 'cancel', 'event', 'subscribe', '__proto__']);
      case 5:
        return this.string(3);
      case 6:
      case 7: {
        const out: Record<string, unknown> = {};
        const n = this.int(5);
        for (let i = 0; i < n; i++) out[this.pick(FIELDS) ?? this.string(8)] = this.json(depth - 1);
        return out;
      }
      default:
        return Array.from({ length: this.int(5) }, () => this.json(depth - 1));
    }
  }

  /** A request that is nearly right: one field of the wrong type, missing, extra or out of range. */
  mutatedRequest(): Record<string, unknown> {
    const base = { ...this.pick(TEMPLATES) };
    const mutation = this.int(7);
    const keys = Object.keys(base);
    const key = this.pick(keys);
    if (mutation === 0) base[key] = this.json(2);
    else if (mutation === 1) delete base[key];
    else if (mutation === 2) base[this.pick(FIELDS)] = this.json(2);
    else if (mutation === 3) base.v = this.pick([0, 2, '1', null, 1.0000001, -1]);
    else if (mutation === 4) base.type = this.pick([this.string(12), 'HELLO', 'trigger ', '', 7]);
    else if (mutation === 5) base[key] = 'x'.repeat(this.pick([129, 257, 2049, 70_000]));
    else base.sessionId = this.pick(['', '0'.repeat(15), 'G'.repeat(16), '../../etc/passwd', 'A'.repeat(16)]);
    return base;
  }

  /** One input: bytes to write on a connection; the caller ends it with a newline. */
  next(): Buffer {
    switch (this.int(8)) {
      case 0:
        return this.bytes(this.int(2048));
      case 1:
        return Buffer.from(JSON.stringify(this.json(6)));
      case 2:
      case 3:
        return Buffer.from(JSON.stringify(this.mutatedRequest()));
      case 4: {
        const text = JSON.stringify(this.pick(TEMPLATES));
        return Buffer.from(text.slice(0, this.int(text.length)));
      }
      case 5: {
        // Several lines in one write, some blank, some with CR.
        const lines = Array.from({ length: 1 + this.int(6) }, () =>
          this.pick(['', '\r', ' ', JSON.stringify(this.mutatedRequest()), this.string(30)]),
        );
        return Buffer.from(lines.join('\n'));
      }
      case 6: {
        // Invalid UTF-8 inside an otherwise plausible request.
        const text = Buffer.from(JSON.stringify({ v: 1, type: 'hello', client: 'XX' }));
        const at = text.indexOf('XX');
        return Buffer.concat([text.subarray(0, at), this.pick(BAD_UTF8), text.subarray(at + 2)]);
      }
      default: {
        const depth = this.int(2000);
        const open = this.pick(['[', '{"a":']);
        const close = open === '[' ? ']' : '}';
        return Buffer.from(open.repeat(depth) + (this.random() < 0.5 ? close.repeat(depth) : ''));
      }
    }
  }
}

/**
 * Whether a line could change the daemon's state: a valid trigger, cancel or injected event. The fuzzer
 * does not send those (a valid `shutdown` event would stop the daemon, as it should).
 */
export function isEffective(line: Buffer): boolean {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line.toString('utf8'));
  } catch {
    return false;
  }
  const result = requestSchema.safeParse(parsed);
  return result.success && ['trigger', 'cancel', 'event'].includes(result.data.type);
}

const FIELDS = [
  'v',
  'type',
  'id',
  'agent',
  'repo',
  'workUnit',
  'timeout',
  'follow',
  'sessionId',
  'event',
  'client',
];

const TEMPLATES: Record<string, unknown>[] = [
  { v: 1, type: 'hello', client: 'fuzz' },
  { v: 1, type: 'status', id: 'f1' },
  { v: 1, type: 'trigger', agent: 'nosuch-agent', follow: true },
  { v: 1, type: 'logs', sessionId: '0123456789abcdef' },
  { v: 1, type: 'cancel', sessionId: '0123456789abcdef' },
  { v: 1, type: 'event', event: { type: 'cancel', sessionId: '0123456789abcdef' } },
  { v: 1, type: 'subscribe' },
];

const BAD_UTF8 = [
  Buffer.from([0xc3]),
  Buffer.from([0xff, 0xfe]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xf4, 0x90, 0x80, 0x80]),
  Buffer.from([0xe2, 0x28, 0xa1]),
];
