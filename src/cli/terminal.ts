import type { Writable } from 'node:stream';
import { inertJson, visible } from '../visible-text.js';

/**
 * On a terminal, text from a session or a client is made visible (see src/visible-text.ts); when stdout
 * is not a terminal, or with `--raw`, it passes as it is. Every text a command prints that came from a
 * session (its output, its record's message, a work unit, a daemon's error) goes through `shownOn`.
 */
export { visible };

/** Text as printed on `stream`: made visible on a terminal (see visible), as it is elsewhere. */
export function shownOn(stream: Writable, text: string): string {
  return outputFilter(stream, false)(text);
}

/**
 * One JSON text: as JSON.stringify makes it, with the characters it leaves raw that a terminal acts on
 * as `\uXXXX` escapes (the same JSON to a parser), so that `--json` on a terminal is as safe as text.
 */
export function jsonText(value: unknown): string {
  return inertJson(JSON.stringify(value));
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
