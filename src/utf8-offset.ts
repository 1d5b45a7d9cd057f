import { isUtf8 } from 'node:buffer';

/**
 * The offset of the first byte of `bytes` that is not part of well-formed UTF-8 (a stray continuation
 * byte, a lead byte without its continuations, an overlong form, a surrogate, a code point past U+10FFFF),
 * or -1 when all of it is UTF-8. isUtf8 answers first: the byte-by-byte walk runs only for bytes that are
 * to be refused, and is linear.
 */
export function firstNonUtf8(bytes: Uint8Array): number {
  if (isUtf8(bytes)) return -1;
  const at = nonUtf8At(bytes, 0, bytes.length);
  // isUtf8 and this walk disagree only if one of them is wrong: say where the walk stopped, the end.
  return at === -1 ? bytes.length : at;
}

/**
 * The offset of the first byte of bytes[from, to) that is not part of well-formed UTF-8, or -1: the walk
 * itself, without isUtf8 (for a short run of a larger buffer, which isUtf8 would need a view of).
 */
export function nonUtf8At(bytes: Uint8Array, from: number, to: number): number {
  for (let at = from; at < to; ) {
    const lead = bytes[at] as number;
    if (lead < 0x80) {
      at++;
      continue;
    }
    // The length of the sequence, and the bounds of its second byte (no overlong form, no surrogate).
    let size: number;
    let low = 0x80;
    let high = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) size = 2;
    else if (lead >= 0xe0 && lead <= 0xef) {
      size = 3;
      if (lead === 0xe0) low = 0xa0;
      if (lead === 0xed) high = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      size = 4;
      if (lead === 0xf0) low = 0x90;
      if (lead === 0xf4) high = 0x8f;
    } else return at;
    if (at + size > to) return at;
    const second = bytes[at + 1] as number;
    if (second < low || second > high) return at;
    for (let i = 2; i < size; i++) if (((bytes[at + i] as number) & 0xc0) !== 0x80) return at;
    at += size;
  }
  return -1;
}
