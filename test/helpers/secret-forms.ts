/**
 * The forms of a credential value a leak is likely to take: what an agent prints (plain, base64 with
 * or without padding, base64url, URL-encoded, hex) and what JSON makes of its bytes when they are kept
 * as a Buffer or a byte array (`"data":[115,107,...]`). A test that looks for the plain value only
 * passes when the value is kept as bytes.
 */
export function secretForms(value: string): string[] {
  const bytes = Buffer.from(value);
  const base64 = bytes.toString('base64');
  return [
    value,
    base64,
    base64.replace(/=+$/, ''),
    bytes.toString('base64url'),
    encodeURIComponent(value),
    bytes.toString('hex'),
    [...bytes].join(','),
  ];
}

/** The forms of `value` that `text` holds (none, for a test to expect an empty list). */
export function secretFormsIn(text: string, value: string): string[] {
  return secretForms(value).filter((form) => text.includes(form));
}
