/**
 * docs/protocol.md is what a third-party client is written from. test/e2e/protocol-doc.test.ts replays its
 * exchanges against a live daemon, but a field that no example shows (an optional one, a reply of a state
 * the replay does not reach) and the code tables drift unseen. Here, without a daemon: the error and
 * rejection code tables are the code's lists with their retryable flags; the requests table names every
 * request type and each one's fields, optional ones with `?`; and every field of every reply (at any depth)
 * is named somewhere on the page.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { daemonEventSchema, requestSchema } from '../../src/protocol/messages.js';
import { ERROR_CODES, RETRYABLE_ERRORS, replySchema } from '../../src/protocol/replies.js';
import { REJECTION_CODES, RETRYABLE_REJECTIONS } from '../../src/sessions/check-trigger.js';

const DOC = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'protocol.md'), 'utf8');

/** The rows of the table whose header line is `header`, as cells. */
function table(header: string): string[][] {
  const lines = DOC.split('\n');
  const start = lines.indexOf(header);
  if (start < 0) throw new Error(`docs/protocol.md has no table headed ${header}`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.slice(2, -2).split(' | '));
  }
  return rows;
}

/** `code` → retryable, for a code table whose first column may name several codes. */
function codeTable(header: string): Record<string, boolean> {
  const codes: Record<string, boolean> = {};
  for (const [first = '', retryable = ''] of table(header)) {
    for (const m of first.matchAll(/`([a-z_]+)`/g)) codes[m[1] as string] = retryable === 'yes';
  }
  return codes;
}

// biome-ignore lint/suspicious/noExplicitAny: zod's internal definitions are read to walk any schema.
type Def = any;
function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

/** The schema without its optional, nullable, default or pipe wrappers, and whether it was optional. */
function unwrap(schema: z.ZodType): { inner: z.ZodType; optional: boolean } {
  let inner = schema;
  let optional = false;
  for (;;) {
    const def = defOf(inner);
    if (def.type === 'optional' || def.type === 'default') optional = true;
    if (['optional', 'nullable', 'default', 'readonly', 'catch'].includes(def.type)) inner = def.innerType;
    else if (def.type === 'pipe') inner = def.in;
    else return { inner, optional };
  }
}

/** Every field name of an object schema and of the objects inside it, as dotted paths. */
function fieldsOf(schema: z.ZodType, path = ''): string[] {
  const def = defOf(unwrap(schema).inner);
  if (def.type === 'object') {
    return Object.entries(def.shape as Record<string, z.ZodType>).flatMap(([key, value]) => [
      `${path}${key}`,
      ...fieldsOf(value, `${path}${key}.`),
    ]);
  }
  if (def.type === 'array') return fieldsOf(def.element, path);
  if (def.type === 'union') return (def.options as z.ZodType[]).flatMap((option) => fieldsOf(option, path));
  if (def.type === 'record') return fieldsOf(def.valueType, `${path}*.`);
  return [];
}

function typeOf(option: z.ZodType): string {
  return defOf(defOf(option).shape.type).values[0] as string;
}

describe('docs/protocol.md', () => {
  it('lists every error code, with whether it is retryable, and no other', () => {
    const doc = codeTable('| code | retryable | when |');
    expect(Object.keys(doc).sort()).toEqual([...ERROR_CODES].sort());
    for (const code of ERROR_CODES)
      expect([code, doc[code]]).toEqual([code, RETRYABLE_ERRORS.includes(code)]);
  });

  it('lists every rejection code of a trigger, with whether it is retryable, and no other', () => {
    const doc = codeTable('| code | retryable | why |');
    expect(Object.keys(doc).sort()).toEqual([...REJECTION_CODES].sort());
    for (const code of REJECTION_CODES) {
      expect([code, doc[code]]).toEqual([code, RETRYABLE_REJECTIONS.includes(code)]);
    }
  });

  it('lists every request type with its fields, an optional one marked with ?', () => {
    const rows = table('| type | since | fields | replies |');
    const documented = rows.flatMap(([types = '']) => [...types.matchAll(/`([a-z]+)`/g)].map((m) => m[1]));
    const options = (defOf(requestSchema).options as z.ZodType[]).map((option) => ({
      type: typeOf(option),
      shape: defOf(option).shape as Record<string, z.ZodType>,
    }));
    expect(documented.sort()).toEqual(options.map((o) => o.type).sort());
    for (const { type, shape } of options) {
      const row = rows.find(([types = '']) => types.includes(`\`${type}\``)) as string[];
      const fields = row[2] ?? '';
      for (const [name, schema] of Object.entries(shape)) {
        if (['v', 'id', 'type'].includes(name)) continue;
        const mark = unwrap(schema).optional ? '?' : '';
        expect([type, fields.includes(`\`${name}${mark}\``)]).toEqual([type, true]);
      }
    }
  });

  it('lists every event a client may send with its fields, an optional one marked with ?', () => {
    const rows = table('| event | fields |');
    const options = defOf(daemonEventSchema).options as z.ZodType[];
    expect(rows.map(([event = '']) => /"type":"([a-z]+)"/.exec(event)?.[1]).sort()).toEqual(
      options.map(typeOf).sort(),
    );
    for (const option of options) {
      const type = typeOf(option);
      const row = (rows.find(([event = '']) => event.includes(`"type":"${type}"`)) as string[]).join(' | ');
      for (const [name, schema] of Object.entries(defOf(option).shape as Record<string, z.ZodType>)) {
        if (name === 'type') continue;
        const optional = unwrap(schema).optional;
        const named = optional
          ? row.includes(`\`${name}?\``) || row.includes(`"${name}"?`)
          : row.includes(`\`${name}\``) || row.includes(`"${name}":`);
        expect([type, name, named]).toEqual([type, name, true]);
      }
    }
  });

  it('names every field of every reply', () => {
    const unnamed = (defOf(replySchema).options as z.ZodType[]).flatMap((option) =>
      fieldsOf(option)
        .filter((path) => {
          const name = path.split('.').pop() as string;
          return !new RegExp(`\`${name}(\\?|\\[\\]|\\b)|"${name}":|[{,] ?${name}[,}]`).test(DOC);
        })
        .map((path) => `${typeOf(option)}: ${path}`),
    );
    expect(unnamed).toEqual([]);
  });
});
