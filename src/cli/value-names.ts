// No clipanion import here: the unit tests load this module without it.

/** What each option's value is, shown instead of clipanion's `#0` (`--socket PATH`). */
export const VALUE_NAMES: Record<string, string> = {
  '--config': 'PATH',
  '--socket': 'PATH',
  '--file': 'PATH',
  '--env-file': 'PATH',
  '--timeout': 'DURATION',
  '--work-unit': 'ID',
  '--log-format': 'FORMAT',
  '--log-level': 'LEVEL',
  '--key': 'KEY',
  '--request': 'TEXT',
  '--request-file': 'PATH',
  '--input': 'NAME=PATH',
  '--exit-code': 'MODE',
  '--agent': 'AGENT',
  '--outcome': 'OUTCOME',
  '--since': 'TIME',
  '--limit': 'N',
  '--output': 'FILE',
  '--after': 'SEQ',
};

/**
 * Replaces clipanion's value placeholders (`--socket #0`) with the value's name (`--socket PATH`), and
 * realigns the option table of a command's help, whose column clipanion computed for the placeholders.
 */
export function nameValues(text: string): string {
  const named = text.replace(/(--[\w-]+)((?:,-\w)?) #0/g, (whole, name: string, short: string) => {
    const value = VALUE_NAMES[name];
    return value === undefined ? whole : `${name}${short} ${value}`;
  });
  // The heading is "Options", or a coloured rule with "Options" in it. Anchored at a line's start: without
  // it every position of a long line (a 100 KB argument repeated in an error) was tried, 9 s of CPU.
  return named.replace(/^(.*Options.*\n\n)((?: {2}.*\n)+)/m, (block, head: string, body: string) => {
    // "  <bold>DEFINITION<padding><bold off>    description", as clipanion writes each option.
    const rows = body
      .split('\n')
      .filter(Boolean)
      // biome-ignore lint/suspicious/noControlCharactersInRegex: clipanion's bold on and off (ESC [ ... m)
      .map((line) => /^ {2}(\x1b\[[0-9;]*m)?(.*?\S) *(\x1b\[[0-9;]*m)? {4}(\S.*)$/.exec(line));
    if (rows.some((row) => row === null)) return block;
    const matched = rows as RegExpExecArray[];
    const width = Math.max(...matched.map((row) => (row[2] as string).length));
    const lines = matched.map(
      ([, on = '', definition = '', off = '', description = '']) =>
        `  ${on}${definition.padEnd(width)}${off}    ${description}\n`,
    );
    return `${head}${lines.join('')}`;
  });
}
