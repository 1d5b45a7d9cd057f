import { type CST, Lexer, type LineCounter, Parser } from 'yaml';

/** Far deeper than agentd.yaml goes (the commented example nests 7 levels), far below a cost. */
export const MAX_YAML_DEPTH = 64;

/**
 * The YAML text's tokens, for the yaml library's Composer to build the document from, or where it first
 * nests deeper than `limit` levels (the offset of the collection one level too deep). The yaml library
 * builds every level before it composes any: measured, a 4 MiB file of `agents: [[[[…` held the event loop
 * for 29 s and took 1.8 GB before it failed with 785 "Maximum call stack size exceeded" problems, and
 * 4 MiB of `- - - …` 10 s and 1.2 GB; a reload did that on the daemon's one thread. This runs the parser
 * token by token and stops at the first level too many. The tokens are kept so that the text is parsed
 * once: parsing it again (parseDocument) was a third of the time of a 4 MiB file's 14,000 agents.
 * `lines` learns where the lines start, as parseDocument's lineCounter does.
 */
export function yamlTokens(
  text: string,
  lines?: LineCounter,
  limit: number = MAX_YAML_DEPTH,
): { tokens: CST.Token[] } | { tooDeepAt: number } {
  const parser = new Parser(lines?.addNewLine);
  lines?.addNewLine(0); // as Parser.parse does
  const tokens: CST.Token[] = [];
  for (const lexeme of new Lexer().lex(text)) {
    for (const token of parser.next(lexeme)) tokens.push(token);
    if (parser.stack.length > limit) {
      return { tooDeepAt: parser.stack[parser.stack.length - 1]?.offset ?? parser.offset };
    }
  }
  for (const token of parser.end()) tokens.push(token);
  return { tokens };
}
