/** Characters of a text from the file that a problem repeats; the rest is counted, not shown. */
export const MAX_SHOWN_CHARS = 256;

/**
 * A text from the file as a problem shows it: quoted, and cut after MAX_SHOWN_CHARS with its length. A
 * value is repeated in each problem about it: an anchor of 3.5 MB used by 99 agents' names made problems
 * of 700 MB in all, which `validate` and a reload failed to build ("Invalid string length") after taking
 * 800 MB, saying neither the file nor the key.
 */
export function quoted(text: string): string {
  return text.length <= MAX_SHOWN_CHARS
    ? JSON.stringify(text)
    : `${JSON.stringify(text.slice(0, MAX_SHOWN_CHARS))}… (${text.length} characters)`;
}
