/** Shortest credential value that is masked; shorter ones would mask ordinary text. */
const MIN_MASKED_LENGTH = 4;
export const MASK = '********';

/**
 * Builds a function that hides credential values in output lines: the plain value, its base64 and
 * its URL-encoded form, so an agent that prints a credential does not leak it into logs.
 */
export function createMasker(values: string[]): (line: string) => string {
  const needles = new Set<string>();
  for (const value of values) {
    if (value.length < MIN_MASKED_LENGTH) continue;
    needles.add(value);
    needles.add(Buffer.from(value).toString('base64'));
    needles.add(Buffer.from(value).toString('base64').replace(/=+$/, ''));
    needles.add(encodeURIComponent(value));
  }
  // Longest first so a value is masked whole before any of its substrings.
  const ordered = [...needles].sort((a, b) => b.length - a.length);
  if (ordered.length === 0) return (line) => line;
  return (line) => {
    let out = line;
    for (const needle of ordered) if (out.includes(needle)) out = out.split(needle).join(MASK);
    return out;
  };
}
