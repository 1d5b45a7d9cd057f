import { Lexer, Parser } from 'yaml';

/** Far deeper than agentd.yaml goes (the commented example nests 7 levels), far below a cost. */
export const MAX_YAML_DEPTH = 64;

/**
 * Where the YAML text first nests deeper than `limit` levels (the offset of the collection one level too
 * deep), or undefined. The yaml library builds every level before it composes any: measured, a 4 MiB file
 * of `agents: [[[[…` held the event loop for 29 s and took 1.8 GB before it failed with 785 "Maximum call
 * stack size exceeded" problems, and 4 MiB of `- - - …` 10 s and 1.2 GB; a reload did that on the daemon's
 * one thread. This runs the same parser token by token and stops at the first level too many.
 */
export function tooDeepAt(text: string, limit: number = MAX_YAML_DEPTH): number | undefined {
  const parser = new Parser();
  for (const lexeme of new Lexer().lex(text)) {
    // The documents it yields are not kept: only the depth of what it builds is wanted.
    for (const _ of parser.next(lexeme)) {
      // nothing to do
    }
    if (parser.stack.length > limit) return parser.stack[parser.stack.length - 1]?.offset ?? parser.offset;
  }
  return undefined;
}
