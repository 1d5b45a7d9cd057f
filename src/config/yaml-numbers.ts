import { type Document, isAlias, isMap, isNode, isPair, isScalar, isSeq, Scalar } from 'yaml';

/**
 * Numbers in agentd.yaml are written in plain decimal. YAML 1.2, as the yaml library reads it, also takes
 * `0x4` (4), `0o10` (8), `1e3` (1000), `+4` and `.5`, and reads `010` as 10 where YAML 1.1 tools (PyYAML,
 * Ansible, older yq) read 8: `max_sessions: 0x4` or `pids: 010` was accepted without a word, a value other
 * than the one an operator or a tool templating the file may have meant. Each is refused at its key with
 * the decimal number it was read as. An env value and a label keep the text as written (`MODE: 0755` is
 * "0755") and are not looked at.
 */
const DECIMAL = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?$/;

/** Mappings whose values are text, a number in them kept as written (load.ts's toEnv). */
const TEXT_MAPPINGS = new Set<PropertyKey | undefined>(['env', 'labels', 'host_labels']);

/** A number written in another form than plain decimal, at its key path. */
export interface OddNumber {
  path: PropertyKey[];
  message: string;
}

/** Every number of the document written otherwise than in plain decimal, in document order. */
export function oddNumbers(doc: Document): OddNumber[] {
  const found: OddNumber[] = [];
  const visit = (node: unknown, path: PropertyKey[]) => {
    if (!isNode(node) || isAlias(node)) return; // an alias's node is looked at where its anchor is
    if (isScalar(node)) {
      const message = oddNumber(node);
      if (message !== undefined && !TEXT_MAPPINGS.has(path.at(-2))) found.push({ path, message });
    } else if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        visit(pair.value, [...path, isScalar(pair.key) ? String(pair.key.value) : '?']);
      }
    } else if (isSeq(node)) {
      for (const [index, item] of node.items.entries()) visit(item, [...path, index]);
    }
  };
  visit(doc.contents, []);
  return found;
}

/** Why a scalar's number is refused, or undefined: not a number, a quoted one, or one in plain decimal. */
function oddNumber(node: Scalar): string | undefined {
  const { value, source } = node;
  if (typeof value !== 'number' || !Number.isFinite(value) || typeof source !== 'string') return undefined;
  // A quoted value is text; one tagged !!int or !!float says what it is meant as.
  if (node.type !== Scalar.PLAIN || node.tag !== undefined || DECIMAL.test(source)) return undefined;
  const written = source.length > 32 ? `${source.slice(0, 32)}…` : source;
  const form =
    node.format === 'HEX'
      ? 'is hexadecimal;'
      : node.format === 'OCT'
        ? 'is octal;'
        : /[eE]/.test(source)
          ? 'has an exponent;'
          : /^[-+]?0[0-9]/.test(source)
            ? 'has a leading zero, which YAML 1.1 tools read as octal;'
            : 'is not in plain decimal;';
  const decimal = String(value);
  const instead = DECIMAL.test(decimal) ? `: write ${decimal}` : '';
  return `${written} ${form} agentd read it as ${decimal}, and takes numbers in plain decimal digits${instead}, or quote the value for text`;
}
