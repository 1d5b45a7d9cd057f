import { describe, expect, it } from 'vitest';
import { createMasker, MASK } from '../../src/runner/mask.js';

/** What the output reader hands the masker: UTF-8-decoded lines, split at \n, \r\n and lone \r. */
function printed(bytes: Buffer): string[] {
  return bytes.toString('utf8').split(/\r\n|\r|\n/);
}

const PEM = [
  '-----BEGIN PRIVATE KEY-----',
  'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj',
  'MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu',
  '-----END PRIVATE KEY-----',
].join('\n');

describe('masking what agents really print', () => {
  it('masks a multi-line value line by line, as echo and cat print it', () => {
    const mask = createMasker([`${PEM}\n`]);
    const out = printed(Buffer.from(`key:\n${PEM}\ndone\n`)).map(mask);
    expect(out).toEqual(['key:', MASK, MASK, MASK, MASK, 'done', '']);
  });

  it('masks a value read with CRLF line endings, with or without its \\r', () => {
    const value = 'line-one-secret\r\nline-two-secret';
    const mask = createMasker([value]);
    for (const line of [
      ...printed(Buffer.from(`${value}\r\n`)),
      'line-one-secret\r',
      'x=line-two-secret\ry',
    ]) {
      expect(mask(line)).not.toMatch(/line-(one|two)-secret/);
    }
  });

  it('masks a value with a trailing newline wherever it is printed without it', () => {
    const mask = createMasker(['s3cr3t-with-newline\n']);
    expect(mask('token=s3cr3t-with-newline;')).toBe(`token=${MASK};`);
    expect(mask('s3cr3t-with-newline')).toBe(MASK);
  });

  it('masks Latin-1 bytes as they arrive in UTF-8-decoded output, and as UTF-8 after conversion', () => {
    const latin1 = Buffer.from('pässwörd-Ä1', 'latin1');
    const mask = createMasker([latin1]);
    // Printed raw: the reader decodes the invalid bytes to U+FFFD, the same way the masker does.
    const [raw] = printed(Buffer.concat([Buffer.from('pw='), latin1, Buffer.from('\n')]));
    expect(mask(raw ?? '')).toBe(`pw=${MASK}`);
    // Converted by the agent (iconv -f latin1 -t utf-8).
    expect(mask('pw=pässwörd-Ä1')).toBe(`pw=${MASK}`);
  });

  it('masks base64 (padded or not), URL-encoding (either hex case) and JSON escaping', () => {
    const value = 'a/b+c d?e=f\ng"h';
    const mask = createMasker([value]);
    const b64 = Buffer.from(value).toString('base64');
    const url = encodeURIComponent(value);
    for (const form of [
      b64,
      b64.replace(/=+$/, ''),
      url,
      url.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase()),
      JSON.stringify(value).slice(1, -1),
    ]) {
      expect(mask(`[${form}]`), form).toBe(`[${MASK}]`);
    }
    expect(mask(JSON.stringify({ token: value }))).toBe(`{"token":"${MASK}"}`);
  });

  it('leaves short values and ordinary text alone', () => {
    const mask = createMasker(['abc', '', 'x\ny', 'long-enough-value']);
    expect(mask('abc x y ok')).toBe('abc x y ok');
    expect(mask('the long-enough-value here')).toBe(`the ${MASK} here`);
  });
});
