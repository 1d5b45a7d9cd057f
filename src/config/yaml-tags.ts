import { type Document, isAlias, isMap, isNode, isPair, isScalar, isSeq } from 'yaml';

/**
 * The YAML tags agentd.yaml may carry: the core schema's own (`!!str "5"`, `!!int`, ...) and `!` (a plain
 * string). The yaml library dropped every other in silence, keeping the text under it: `repo_token: !env
 * GITHUB_TOKEN` was read as the literal GITHUB_TOKEN, `image: !foo x` as x, and `!!binary aGk=` became
 * bytes, refused as "not a mapping". An operator who wrote such a tag expected something agentd does not do.
 */
const CORE = 'tag:yaml.org,2002:';
const ALLOWED = new Set(['!', ...['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => CORE + t)]);

/** A tag agentd does not take, at its key path (`onKey`: on the key itself, `!foo key: v`). */
export interface CustomTag {
  path: PropertyKey[];
  onKey: boolean;
  message: string;
}

/** Every node of the document with a tag agentd does not take, in document order. */
export function customTags(doc: Document): CustomTag[] {
  const found: CustomTag[] = [];
  const visit = (node: unknown, path: PropertyKey[]) => {
    if (!isNode(node) || isAlias(node)) return; // an alias's node is looked at where its anchor is
    if (node.tag !== undefined && !ALLOWED.has(node.tag)) {
      found.push({ path, onKey: false, message: tagMessage(node.tag) });
    }
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const key = isScalar(pair.key) ? String(pair.key.value) : '?';
        if (
          isNode(pair.key) &&
          !isAlias(pair.key) &&
          pair.key.tag !== undefined &&
          !ALLOWED.has(pair.key.tag)
        ) {
          found.push({ path: [...path, key], onKey: true, message: tagMessage(pair.key.tag) });
        }
        visit(pair.value, [...path, key]);
      }
    } else if (isSeq(node)) {
      for (const [index, item] of node.items.entries()) visit(item, [...path, index]);
    }
  };
  visit(doc.contents, []);
  return found;
}

/** Why a tag is refused, and what to write instead; the tag as written, cut short. */
function tagMessage(tag: string): string {
  const written = tag.startsWith(CORE) ? `!!${tag.slice(CORE.length)}` : tag;
  const shown = written.length > 64 ? `${written.slice(0, 64)}…` : written;
  return (
    `the YAML tag ${shown} is not supported: agentd expands no tags (and no \${VAR}) in its configuration; ` +
    'remove the tag. A credential (credentials[].source, repo_token, a notify secret, an http token) is read ' +
    "when it is needed from its source, written without a tag: env:NAME (the daemon's environment) or " +
    'file:/absolute/path'
  );
}
