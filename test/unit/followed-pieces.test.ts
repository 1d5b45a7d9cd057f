import { describe, expect, it } from 'vitest';
import { FollowedPieces, matchFollowed, pieceKey } from '../../src/runner/followed-pieces.js';

const keys = (lines: string[]) => lines.map((line) => pieceKey(line, true));

function followed(lines: string[], maxBytes?: number, maxPieces?: number): FollowedPieces {
  const pieces = new FollowedPieces(maxBytes, maxPieces);
  for (const line of lines) pieces.add(line, true);
  return pieces;
}

/** Per piece of `copy`: 1 where the match places a piece of the follow. */
function handedIn(copy: unknown[], placed: Int32Array): number[] {
  const handed = copy.map(() => 0);
  for (const at of placed) if (at !== -1) handed[at] = 1;
  return handed;
}

/** Which lines of `copy` the follow of `seen` handed on, as the catch-up marks them. */
function handedOf(copy: string[], seen: string[]): string {
  return handedIn(copy, matchFollowed(keys(copy), followed(seen).kept()).placed).join('');
}

describe('what a log follow handed on', () => {
  it('keeps fingerprints of its latest pieces, within its bounds of bytes and pieces', () => {
    expect(Array.from(followed(['aaaa', 'bbbb', 'cccc'], 8).kept())).toEqual(keys(['bbbb', 'cccc']));
    expect(Array.from(followed(['a', 'b', 'c', 'd', 'e'], 1000, 2).kept())).toEqual(keys(['d', 'e']));
    // Grown as pieces come, then a ring: the latest in order.
    const lines = Array.from({ length: 1000 }, (_, i) => `line ${i}`);
    expect(Array.from(followed(lines, 1 << 20, 600).kept())).toEqual(keys(lines.slice(400)));
    // One piece larger than the bound is still kept: the newest is what the catch-up looks for first.
    expect(followed(['x'.repeat(100)], 8).kept()).toHaveLength(1);
  });

  it('tells pieces apart by text and by whether a line break ended them', () => {
    expect(pieceKey('abc', true)).not.toBe(pieceKey('abc', false));
    expect(pieceKey('abc', true)).not.toBe(pieceKey('abd', true));
    expect(pieceKey('', true)).not.toBe(pieceKey(' ', true));
    expect(pieceKey('x'.repeat(1000), true)).toBe(pieceKey('x'.repeat(1000), true));
    const many = new Set<number>();
    for (let i = 0; i < 100_000; i++) many.add(pieceKey(`line ${i}`, true));
    expect(many.size).toBe(100_000);
  });

  it('marks what it handed on in order, with lines left out between', () => {
    expect(handedOf(['a', 'b', 'c', 'd', 'e'], ['a', 'b', 'c'])).toBe('11100');
    expect(handedOf(['a', 'b', 'c', 'd', 'e'], ['a', 'c', 'd'])).toBe('10110');
    // Left out before its first line too: the copy begins where the follow began.
    expect(handedOf(['', 'ERROR: important', '', 'tail'], ['', 'tail'])).toBe('1001');
    expect(handedOf(['progress', 'leaked', 'progress', 'done'], ['progress', 'done'])).toBe('1001');
  });

  it('marks as many of repeated lines as it handed on, the earliest ones', () => {
    expect(handedOf(['', 'a', '', '', 'b', ''], ['', 'a', ''])).toBe('111000');
    const blank = Array.from({ length: 1000 }, () => '');
    const marked = handedOf(blank, blank.slice(0, 500));
    expect(marked).toBe('1'.repeat(500) + '0'.repeat(500));
  });

  it('does not take a line cut short for a longer one: the whole line is not marked, and comes again', () => {
    expect(
      handedOf(['', 'Downloading file 1', 'x', '', 'Downloading file 10'], ['', 'Downloading file 1']),
    ).toBe('11000');
    expect(handedOf(['x', 'a line Podman cut', 'y'], ['x', 'a line Po'])).toBe('100');
  });

  it('places its newest piece only after all the others (it may be a line cut short)', () => {
    expect(handedOf(['x1', 'ab', 'x2', 'x3', 'abc', 'x4'], ['x1', 'ab', 'x2', 'x3', 'ab'])).toBe('111100');
    expect(handedOf(['a', 'b', 'a'], ['a', 'b', 'a'])).toBe('111');
    expect(handedOf(['a', 'b'], ['a'])).toBe('10');
  });

  it('passes over a piece the copy does not hold, and the pieces from before the copy began', () => {
    expect(handedOf(['a', 'b', 'cccc', 'd', 'e'], ['a', 'b', 'cc', 'cc', 'd'])).toBe('11010');
    const older = Array.from({ length: 1000 }, (_, i) => `old ${i}`);
    expect(handedOf(['a', 'b'], [...older, 'a'])).toBe('10');
    // An older piece the copy holds by chance is not searched for once many in a row are missing.
    expect(handedOf(['', 'a', 'b'], ['', ...older, 'a'])).toBe('010');
  });

  it('marks nothing when the copy holds none of its pieces (emptied past them)', () => {
    const match = matchFollowed(keys(['y1', 'y2']), followed(['x1', 'x2', 'x3']).kept());
    expect(match.matched).toBe(0);
    expect(Array.from(match.placed)).toEqual([-1, -1, -1]);
    expect(handedIn(['y1', 'y2'], match.placed)).toEqual([0, 0]);
  });
});
