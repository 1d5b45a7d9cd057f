/**
 * Text that reaches a person's terminal from somewhere untrusted (an agent's output, a git server's
 * messages, a client's work unit) must not act on it: escape sequences can retitle the window, write the
 * clipboard (OSC 52) or redraw what is shown, and bidirectional overrides and invisible characters make a
 * line read as something it does not say. Used by the CLI (src/cli/terminal.ts) and the daemon's log.
 */
/** A variation selector: U+FE00..U+FE0F, and the supplement U+E0100..U+E01EF. */
const SELECTOR = '[\\uFE00-\\uFE0F\\u{E0100}-\\u{E01EF}]';

/**
 * Control characters but tab and newline, the line and paragraph separators, and every format character
 * (Unicode's Cf: bidirectional controls, zero-width characters, and also the tag characters
 * U+E0000..U+E007F, which spell hidden ASCII that a terminal does not show but a model reading the text
 * does, the deprecated U+206A..U+206F, U+180E, U+FFF9..U+FFFB and the soft hyphen). A list of some of
 * them let the rest through. Variation selectors hide bytes the same way (one per selector, a run of them
 * after one emoji); text uses one after a character, and those of the supplement only after an
 * ideograph, so a selector that follows another, or one of the supplement that follows no ideograph, is
 * shown, and an emoji's own selector (U+FE0F) is kept.
 */
const CONTROL = new RegExp(
  `[\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f\\u2028\\u2029\\p{Cf}]|${SELECTOR}(?<=${SELECTOR}${SELECTOR})|[\\u{E0100}-\\u{E01EF}](?<!\\p{Ideographic}[\\u{E0100}-\\u{E01EF}])`,
  'gu',
);

/**
 * A name holding any character `visible` would show otherwise, tab and newline too: a file name an
 * agent made that a terminal, a file manager or a script would act on or show as another.
 */
export const UNSHOWABLE_NAME = new RegExp(`[\t\n]|${CONTROL.source}`, 'u');

/**
 * `text` with its control characters but tab and newline made visible the way `cat -v` shows them (`^[`
 * for ESC, `^M` for CR, `^?` for DEL, `M-^[` for the C1 controls U+0080..U+009F), and the format
 * characters as `<U+202E>`.
 */
export function visible(text: string): string {
  return text.replace(CONTROL, shown);
}

const COLOUR_OR_CONTROL = new RegExp(`\\x1b\\[[0-9;]*m|${CONTROL.source}`, 'gu');

/** As visible, but colour sequences (SGR: `ESC [ ... m`) kept: for text a formatter has coloured. */
export function visibleKeepingColours(text: string): string {
  // A colour sequence starts `ESC [`; a tag character is two UTF-16 units too, and is shown.
  return text.replace(COLOUR_OR_CONTROL, (match) => (match.startsWith('\x1b[') ? match : shown(match)));
}

function shown(c: string): string {
  // A tag character is two UTF-16 units: its code point, not its first half.
  const code = c.codePointAt(0) ?? 0;
  if (code === 0x7f) return '^?';
  if (code > 0x9f) return `<U+${code.toString(16).toUpperCase().padStart(4, '0')}>`;
  if (code >= 0x80) return `M-^${String.fromCharCode(code - 0x80 + 0x40)}`;
  return `^${String.fromCharCode(code + 0x40)}`;
}

/** What JSON.stringify leaves raw that a terminal acts on: DEL, C1 controls, format characters. */
const JSON_UNSAFE = /[\u007f-\u009f\u2028\u2029\p{Cf}]/gu;

/**
 * JSON text with the characters JSON leaves raw that a terminal acts on as `\uXXXX` escapes: the same
 * JSON to a parser, inert on a terminal. (Outside strings JSON has none of them.)
 */
export function inertJson(json: string): string {
  // One escape per UTF-16 unit: a tag character (U+E0000..U+E007F) is written as its surrogate pair.
  return json.replace(JSON_UNSAFE, (c) => {
    let escaped = '';
    for (let i = 0; i < c.length; i++) escaped += `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`;
    return escaped;
  });
}
