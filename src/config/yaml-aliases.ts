import { type Document, isAlias, isMap, isNode, isPair, isScalar, isSeq, type Node } from 'yaml';

/** Values that aliases may add in all: far more than `<<: *defaults` for thousands of agents. */
export const MAX_ALIAS_VALUES = 1_000_000;

/**
 * Puts each alias's node in its place, so that the yaml library's toJS never resolves an alias itself, and
 * counts the values they add. The library looks each alias (and each merge key's alias) up by scanning the
 * document's anchors and aliases before it, and bounds their use by anchor (100 uses of a mapping without
 * aliases): measured, 30,000 aliases (a 290 KB file) took 10 s, 150 agents with `<<: *defaults`, as the
 * README suggests, were refused as "a resource exhaustion attack", and one anchor of 500,000 values used
 * by 99 agents (1 MB) took 8 s and 950 MB. Here each node's size (what it stands for, aliases counted as
 * what they stand for) is known once it is walked, in the document's order, as anchors are defined.
 * Returns the function that puts the aliases back (the locator reads the document as written), or where
 * the aliases went over the bound or an alias lies inside its own anchor (an endless value).
 */
export function inlineAliases(
  doc: Document,
  limit: number = MAX_ALIAS_VALUES,
): { restore: () => void } | { offset: number; message: string } {
  const anchors = new Map<string, Node>();
  const sizes = new WeakMap<Node, number>();
  const open = new Set<Node>();
  const undo: (() => void)[] = [];
  const restore = () => {
    for (let i = undo.length - 1; i >= 0; i--) undo[i]?.();
  };
  let added = 0;
  let stop: { offset: number; message: string } | undefined;

  const slot = (value: unknown, put: (node: unknown) => void): number => {
    if (!isAlias(value)) return walk(value);
    const target = anchors.get(value.source);
    if (target === undefined) return 1; // the composer has said so
    if (open.has(target)) {
      stop ??= {
        offset: value.range?.[0] ?? 0,
        message: `the alias *${value.source} lies inside the value of its own anchor &${value.source}, which makes that value endless; refer to another anchor, or write the value out`,
      };
      return 1;
    }
    const size = sizes.get(target) ?? 1;
    added += size;
    if (added > limit) {
      stop ??= {
        offset: value.range?.[0] ?? 0,
        message: `the aliases up to this one (*${value.source}) stand for more than ${limit} values in all (an alias of anchors with aliases multiplies them); agentd.yaml needs a few, such as <<: *defaults in each agent: is it the right file?`,
      };
      return 1;
    }
    put(target);
    undo.push(() => put(value));
    return size;
  };

  const walk = (node: unknown): number => {
    if (stop !== undefined || !isNode(node)) return 1;
    if (node.anchor !== undefined) anchors.set(node.anchor, node);
    let size = 1;
    if (isScalar(node)) return size;
    open.add(node);
    if (isMap(node) || isSeq(node)) {
      const items = node.items as unknown[];
      items.forEach((item, i) => {
        if (isPair(item)) {
          size += slot(item.key, (n) => {
            item.key = n;
          });
          size += slot(item.value, (n) => {
            item.value = n;
          });
        } else {
          size += slot(item, (n) => {
            items[i] = n;
          });
        }
      });
    }
    open.delete(node);
    sizes.set(node, size);
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
