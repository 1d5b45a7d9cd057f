import type { Writable } from 'node:stream';

/**
 * Agent output is untrusted: written raw to a terminal, escape sequences can retitle the window, write
 * the clipboard (OSC 52) or redraw what the operator sees; bidirectional overrides and invisible
 * characters make a line read as something it does not say. On a terminal, control characters other
 * than tab are made visible the way `cat -v` shows them (`^[` for ESC, `^M` for CR, `^?` for DEL,
 * `M-^[` for the C1 controls U+0080..U+009F), and the format characters as `<U+202E>`; when stdout is
 * not a terminal, or with `--raw`, text passes as it is. Every text a command prints that came from a
 * session (its output, its record's message, a work unit, a daemon's error) goes through `shownOn`.
 */
const CONTROL =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

/** `text` with its control and format characters (but tab and newline) made visible. */
export function visible(text: string): string {
  return text.replace(CONTROL, (c) => {
    const code = c.charCodeAt(0);
    if (code === 0x7f) return '^?';
    if (code > 0x9f) return `<U+${code.toString(16).toUpperCase().padStart(4, '0')}>`;
    if (code >= 0x80) return `M-^${String.fromCharCode(code - 0x80 + 0x40)}`;
    return `^${String.fromCharCode(code + 0x40)}`;
  });
}

/** Text as printed on `stream`: made visible on a terminal (see visible), as it is elsewhere. */
export function shownOn(stream: Writable, text: string): string {
  return outputFilter(stream, false)(text);
}

/** What JSON.stringify leaves raw that a terminal acts on: C1 controls, format characters. */
const JSON_UNSAFE = /[\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

/**
 * One JSON text: as JSON.stringify makes it, with the characters it leaves raw that a terminal acts on
 * as `\uXXXX` escapes (the same JSON to a parser), so that `--json` on a terminal is as safe as text.
 */
export function jsonText(value: unknown): string {
  return JSON.stringify(value).replace(
    JSON_UNSAFE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** How a line of agent output is written to `stream`: made visible on a terminal unless raw. */
export function outputFilter(stream: Writable, raw: boolean): (text: string) => string {
  return !raw && (stream as { isTTY?: boolean }).isTTY === true ? visible : (text) => text;
}

/**
 * A reader that went away (`agentd logs ID | head`) is not an error: writes to stdout stop quietly,
 * and `onGone` is told once.
 */
export function quietOnBrokenPipe(stream: Writable, onGone: () => void): () => boolean {
  let gone = false;
  // EPIPE, or any other failure to write: there is no one left to tell.
  const listener = () => {
    if (gone) return;
    gone = true;
    onGone();
  };
  stream.on('error', listener);
  return () => gone;
}
