/** Characters of a text from the file that a problem repeats; the rest is counted, not shown. */
export const MAX_SHOWN_CHARS = 256;

/**
 * A text from the file as a problem shows it: quoted, and cut after MAX_SHOWN_CHARS with its length. A
 * value is repeated in each problem about it: an anchor of 3.5 MB used by 99 agents' names made problems
 * of 700 MB in all, which `validate` and a reload failed to build ("Invalid string length") after taking
 * 800 MB, saying neither the file nor the key.
 *
 * A text that looks like a credential value (looksLikeSecret) is not repeated at all, only its length:
 * a token pasted into the wrong key (a mount's source, an env name, a network) came back whole in
 * `validate`, its --json, a failed start and the daemon's reload error, which reach terminals, CI logs
 * and the journal. The problem's key path, line and column say where it is.
 */
export function quoted(text: string): string {
  if (looksLikeSecret(text)) return hiddenValue(text.length);
  return text.length <= MAX_SHOWN_CHARS
    ? JSON.stringify(text)
    : `${JSON.stringify(text.slice(0, MAX_SHOWN_CHARS))}… (${text.length} characters)`;
}

/** What a problem says in place of a text that looks like a credential value. */
export function hiddenValue(length: number, what = 'the value'): string {
  return `${what} (${length} characters, not shown: it looks like a credential)`;
}

/** Separators within a value: a path's slashes, a URL's punctuation, spaces, quotes and brackets. */
const SEPARATOR_CHARS = '\\s/\\\\:@,;=?&#%"\'`()[\\]{}<>|!*$^';
const SEPARATORS = new RegExp(`[${SEPARATOR_CHARS}]+`);
/** The pieces between them, as a match (hideSecretParts). */
const PIECES = new RegExp(`[^${SEPARATOR_CHARS}]+`, 'g');

/**
 * A text that looks like a credential value rather than a name, path or word, by how tokens are made:
 *  - a piece (between separators) of 16 characters or more with upper and lower case letters and digits
 *    and a run of 12 letters and digits (ghp_…, sk-proj-…, glpat-…, xoxb-…-AbC…, a JWT; not a temporary
 *    directory's agentd-run-JJfM3P);
 *  - a run of 16 letters and digits or more with both in it (hex as `openssl rand -hex` makes it, an AWS
 *    access key id AKIA…, base32), where names and paths put a `-`, `_` or `.` between words;
 *  - 32 characters or more of the base64 alphabet alone, not starting as a path does, with upper and
 *    lower case letters and digits (an AWS secret access key, a base64 key);
 *  - a key file's content: a line break, PEM armour, or a JSON object.
 * It may hide a plain path such as /srv/MyProject2024Build; the problem's line and column still point at
 * it. A short password of words cannot be told from a name, and is shown like one.
 */
export function looksLikeSecret(text: string): boolean {
  if (/[\r\n]/.test(text) || text.includes('-----BEGIN') || /^\s*\{\s*"/.test(text)) return true;
  return base64LooksSecret(text) || text.split(SEPARATORS).some(pieceLooksSecret);
}

/** 32 characters or more of the base64 alphabet alone, not starting as a path does, mixed case and digits. */
function base64LooksSecret(text: string): boolean {
  return (
    text.length >= 32 && /^[A-Za-z0-9+/=_-]+$/.test(text) && !/^[/.~]/.test(text) && mixedCaseWithDigit(text)
  );
}

/** A piece between separators that looks like a token (looksLikeSecret's first two rules). */
function pieceLooksSecret(piece: string): boolean {
  if (piece.length < 16) return false;
  if (mixedCaseWithDigit(piece) && /[A-Za-z0-9]{12}/.test(piece)) return true;
  for (const run of piece.match(/[A-Za-z0-9]{16,}/g) ?? []) {
    if (/[0-9]/.test(run) && /[A-Za-z]/.test(run)) return true;
  }
  return false;
}

/** What stands in for a part of a text that looks like a credential value (hideSecretParts). */
export const HIDDEN_PART = '<hidden>';

/**
 * A text shown with each part that looks like a credential value replaced by HIDDEN_PART, the rest as
 * it is: a command's `sh -c` script stays readable, `Authorization: Bearer ghp_…` shows as
 * `Authorization: Bearer <hidden>`, `--key=<base64>` as `--key=<hidden>`. The parts are
 * looksLikeSecret's: a piece between separators made like a token, or a word of 32 characters or more
 * of the base64 alphabet (after a `--flag=`). For what an operator wrote where anything may be (an
 * agent's command and env values), which agentd shows and which should have been a credential.
 */
export function hideSecretParts(text: string): string {
  return text.replace(/[^\s"'`]+/g, (word) => {
    const flag = /^(-{1,2}[A-Za-z0-9_.-]+=)(.+)$/.exec(word);
    const [prefix, rest] = flag ? [flag[1] ?? '', flag[2] ?? ''] : ['', word];
    if (base64LooksSecret(rest)) return `${prefix}${HIDDEN_PART}`;
    return prefix + rest.replace(PIECES, (piece) => (pieceLooksSecret(piece) ? HIDDEN_PART : piece));
  });
}

function mixedCaseWithDigit(text: string): boolean {
  return /[a-z]/.test(text) && /[A-Z]/.test(text) && /[0-9]/.test(text);
}
