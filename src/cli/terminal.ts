import type { Writable } from 'node:stream';

/**
 * Agent output is untrusted: written raw to a terminal, escape sequences can retitle the window, write
 * the clipboard (OSC 52) or redraw what the operator sees. On a terminal, control characters other
 * than tab are made visible the way `cat -v` shows them (`^[` for ESC, `^M` for CR, `^?` for DEL,
 * `M-^[` for the C1 controls U+0080..U+009F); when stdout is not a terminal, or with `--raw`, text
 * passes as it is.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** `text` with its control characters (but tab) made visible. */
export function visible(text: string): string {
  return text.replace(CONTROL, (c) => {
    const code = c.charCodeAt(0);
    if (code === 0x7f) return '^?';
    if (code >= 0x80) return `M-^${String.fromCharCode(code - 0x80 + 0x40)}`;
    return `^${String.fromCharCode(code + 0x40)}`;
  });
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
