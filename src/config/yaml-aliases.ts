import { type Document, isAlias, isMap, isNode, isPair, isScalar, isSeq, type Node } from 'yaml';
import { MAX_CONFIG_BYTES } from './config-file.js';

/** Values that aliases may add in all: far more than `<<: *defaults` for thousands of agents. */
export const MAX_ALIAS_VALUES = 1_000_000;

/**
 * Bytes of text (keys and scalar values, as JSON strings in UTF-8: what the daemon's replies carry) the
 * configuration may hold once its aliases are expanded: four times what the file may hold as written. The
 * values bound alone let one anchor of a 1 MiB argument be used by 600 agents from a 1 MB file (measured):
 * the daemon started and held them as one string, but every `agents` request failed ("could not handle
 * agents": its 600 MB answer past V8's longest string) and its RSS stayed at 727 MB, and `agentd validate`
 * failed with "Invalid string length" at 731 MB.
 */
export const MAX_EXPANDED_BYTES = 4 * MAX_CONFIG_BYTES;

/** Where the aliases went over a bound: the alias's offset and the key path it is used at. */
export interface AliasProblem {
  offset: number;
  path: (string | number)[];
  message: string;
}

/** The line of an offset in the text, for the anchor an alias refers to; without it the line is not said. */
type LineOf = (offset: number) => number;

const mib = (bytes: number) => {
  const n = bytes / (1024 * 1024);
  return `${Number.isInteger(n) ? n : n.toFixed(1)} MiB`;
};

/**
 * Puts each alias's node in its place, so that the yaml library's toJS never resolves an alias itself, and
 * counts the values and the bytes of text they add (MAX_EXPANDED_BYTES). The library looks each alias (and each merge key's alias) up by scanning the
 * document's anchors and aliases before it, and bounds their use by anchor (100 uses of a mapping without
 * aliases): measured, 30,000 aliases (a 290 KB file) took 10 s, 150 agents with `<<: *defaults`, as the
 * README suggests, were refused as "a resource exhaustion attack", and one anchor of 500,000 values used
 * by 99 agents (1 MB) took 8 s and 950 MB. Here each node's size (what it stands for, aliases counted as
 * what they stand for) and its bytes are known once it is walked, in the document's order, as anchors are
 * defined: the expanded document is measured, never built. Returns the function that puts the aliases back
 * (the locator reads the document as written), or where the aliases went over a bound or an alias lies
 * inside its own anchor (an endless value), with the key path the alias is used at.
 */
export function inlineAliases(
  doc: Document,
  limit: number = MAX_ALIAS_VALUES,
  byteLimit: number = MAX_EXPANDED_BYTES,
  lineOf?: LineOf,
): { restore: () => void } | AliasProblem {
  const anchors = new Map<string, Node>();
  const sizes = new WeakMap<Node, number>();
  // The text bytes each node stands for, aliases counted as what they stand for; `bytes` is the running
  // total of the document as expanded, so that it is bounded before anything is built from it.
  const byteSizes = new WeakMap<Node, number>();
  const open = new Set<Node>();
  const undo: (() => void)[] = [];
  const restore = () => {
    for (let i = undo.length - 1; i >= 0; i--) undo[i]?.();
  };
  const path: (string | number)[] = [];
  let added = 0;
  let bytes = 0;
  // The bytes of the node being walked so far: its scalars and what its aliases stand for.
  let nodeBytes = 0;
  let stop: AliasProblem | undefined;

  const slot = (value: unknown, put: (node: unknown) => void): number => {
    if (!isAlias(value)) return walk(value);
    const target = anchors.get(value.source);
    if (target === undefined) return 1; // the composer has said so
    if (open.has(target)) {
      stop ??= {
        offset: value.range?.[0] ?? 0,
        path: [...path],
        message: `the alias *${value.source} lies inside the value of its own anchor &${value.source}, which makes that value endless; refer to another anchor, or write the value out`,
      };
      return 1;
    }
    const size = sizes.get(target) ?? 1;
    added += size;
    const targetBytes = byteSizes.get(target) ?? 0;
    bytes += targetBytes;
    if (added > limit) {
      stop ??= {
        offset: value.range?.[0] ?? 0,
        path: [...path],
        message: `the aliases up to this one (*${value.source}) stand for more than ${limit} values in all (an alias of anchors with aliases multiplies them); agentd.yaml needs a few, such as <<: *defaults in each agent: is it the right file?`,
      };
      return 1;
    }
    if (bytes > byteLimit) {
      const line = lineOf !== undefined && target.range ? ` at line ${lineOf(target.range[0])}` : '';
      stop ??= {
        offset: value.range?.[0] ?? 0,
        path: [...path],
        message: `the aliases up to this one (*${value.source}) make the configuration more than ${mib(byteLimit)} of text once expanded (the anchor &${value.source}${line} stands for ${mib(targetBytes)}, and each alias of it adds that again); agentd reads at most ${mib(MAX_CONFIG_BYTES)} as written and ${mib(byteLimit)} expanded: write a large value once, in the one place that uses it, or shorten it (is it the right file?)`,
      };
      return 1;
    }
    put(target);
    undo.push(() => put(value));
    nodeBytes += targetBytes;
    return size;
  };

  // A merge key's value is the library's symbol for it: it is told as written, `<<`.
  const keyOf = (key: unknown): string =>
    isScalar(key)
      ? typeof key.value === 'symbol'
        ? (key.source ?? '<<')
        : String(key.value)
      : isAlias(key)
        ? `*${key.source}`
        : '?';

  const walk = (node: unknown): number => {
    if (stop !== undefined || !isNode(node)) return 1;
    if (node.anchor !== undefined) anchors.set(node.anchor, node);
    let size = 1;
    if (isScalar(node)) {
      const own = scalarBytes(node);
      bytes += own;
      nodeBytes += own;
      byteSizes.set(node, own);
      return size;
    }
    const outer = nodeBytes;
    nodeBytes = 0;
    open.add(node);
    if (isMap(node) || isSeq(node)) {
      const items = node.items as unknown[];
      items.forEach((item, i) => {
        if (isPair(item)) {
          size += slot(item.key, (n) => {
            item.key = n;
          });
          path.push(keyOf(item.key));
          size += slot(item.value, (n) => {
            item.value = n;
          });
          path.pop();
        } else {
          path.push(i);
          size += slot(item, (n) => {
            items[i] = n;
          });
          path.pop();
        }
      });
    }
    open.delete(node);
    sizes.set(node, size);
    byteSizes.set(node, nodeBytes);
    nodeBytes += outer;
    return size;
  };

  slot(doc.contents, (n) => {
    doc.contents = n as Document['contents'];
  });
  if (stop !== undefined) {
    restore();
    return stop;
  }
  return { restore };
}

/**
 * The bytes a scalar's value takes as text: a string's as the daemon's replies carry it (JSON, in UTF-8, so
 * that a control character counts the six bytes of its escape), another value's as written. Counted in
 * UTF-8 alone, 15 aliases of an anchor of 1 MiB of "\x01" (a 4 MiB file) were within the bound, and the
 * `agents` reply of 90 MB was refused by the CLI as longer than any reply of agentd's.
 */
function scalarBytes(node: { value: unknown; range?: [number, number, number] | null }): number {
  if (typeof node.value === 'string') return Buffer.byteLength(JSON.stringify(node.value)) - 2;
  const range = node.range;
  return range ? range[1] - range[0] : String(node.value).length;
}
