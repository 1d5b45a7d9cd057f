/**
 * Text that reaches a person's terminal from somewhere untrusted (an agent's output, a git server's
 * messages, a client's work unit) must not act on it: escape sequences can retitle the window, write the
 * clipboard (OSC 52) or redraw what is shown, and bidirectional overrides and invisible characters make a
 * line read as something it does not say. Used by the CLI (src/cli/terminal.ts) and the daemon's log.
 */
const CONTROL =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

/**
 * A name holding any character `visible` would show otherwise, tab and newline too: a file name an
 * agent made that a terminal, a file manager or a script would act on or show as another.
 */
export const UNSHOWABLE_NAME = new RegExp(`[\t\n]|${CONTROL.source}`);

/**
 * `text` with its control characters but tab and newline made visible the way `cat -v` shows them (`^[`
 * for ESC, `^M` for CR, `^?` for DEL, `M-^[` for the C1 controls U+0080..U+009F), and the format
 * characters as `<U+202E>`.
 */
export function visible(text: string): string {
  return text.replace(CONTROL, shown);
}

const COLOUR_OR_CONTROL = new RegExp(`\\x1b\\[[0-9;]*m|${CONTROL.source}`, 'g');

/** As visible, but colour sequences (SGR: `ESC [ ... m`) kept: for text a formatter has coloured. */
export function visibleKeepingColours(text: string): string {
  return text.replace(COLOUR_OR_CONTROL, (match) => (match.length > 1 ? match : shown(match)));
}

function shown(c: string): string {
  const code = c.charCodeAt(0);
  if (code === 0x7f) return '^?';
  if (code > 0x9f) return `<U+${code.toString(16).toUpperCase().padStart(4, '0')}>`;
  if (code >= 0x80) return `M-^${String.fromCharCode(code - 0x80 + 0x40)}`;
  return `^${String.fromCharCode(code + 0x40)}`;
}

/** What JSON.stringify leaves raw that a terminal acts on: C1 controls, format characters. */
const JSON_UNSAFE = /[\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

/**
 * JSON text with the characters JSON leaves raw that a terminal acts on as `\uXXXX` escapes: the same
 * JSON to a parser, inert on a terminal. (Outside strings JSON has none of them.)
 */
export function inertJson(json: string): string {
  return json.replace(JSON_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
