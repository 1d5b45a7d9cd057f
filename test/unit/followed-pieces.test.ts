import { describe, expect, it } from 'vitest';
import { FollowedPieces, lastPieceOf, matchFollowed, pieceKey } from '../../src/runner/followed-pieces.js';

const keys = (lines: string[]) => lines.map((line) => pieceKey(line, true));

function followed(lines: string[], maxBytes?: number, maxPieces?: number): FollowedPieces {
  const pieces = new FollowedPieces(maxBytes, maxPieces);
  for (const line of lines) pieces.add(line, true);
  return pieces;
}

/** Which lines of `copy` the follow of `seen` handed on, as the catch-up marks them. */
function handedOf(copy: string[], seen: string[]): string {
  const pieces = followed(seen);
  const copyKeys = keys(copy);
  const isLast = lastPieceOf(pieces);
  const lastAt = copy.flatMap((line, i) => (isLast(line, copyKeys[i] ?? 0) ? [i] : []));
  const match = matchFollowed(copyKeys, pieces.kept(), lastAt);
  return Array.from(match.handed).join('');
}

describe('what a log follow handed on', () => {
  it('keeps fingerprints of its latest pieces, within its bounds of bytes and pieces', () => {
    const byBytes = followed(['aaaa', 'bbbb', 'cccc'], 8);
    expect(Array.from(byBytes.kept())).toEqual(keys(['bbbb', 'cccc']));
    expect(byBytes.count).toBe(3);
    const byPieces = followed(['a', 'b', 'c', 'd', 'e'], 1000, 2);
    expect(Array.from(byPieces.kept())).toEqual(keys(['d', 'e']));
    expect(byPieces.lastText).toBe('e');
    // Grown as pieces come, then a ring: the latest in order.
    const lines = Array.from({ length: 1000 }, (_, i) => `line ${i}`);
    expect(Array.from(followed(lines, 1 << 20, 600).kept())).toEqual(keys(lines.slice(400)));
    // One piece larger than the bound is still kept: the last piece is what the catch-up looks for first.
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
    // Repeated lines: as many marked as were handed on, the earliest after the first (the later ones
    // came after the follow's end).
    expect(handedOf(['', 'a', '', '', 'b', ''], ['', 'a', ''])).toBe('111000');
    // ... and the follow's first piece the latest it can be (the copy may begin before the follow did).
    expect(handedOf(['', '', 'a', 'b'], ['', 'a'])).toBe('0110');
  });

  it('tells a follow that began before the copy from one that began inside it', () => {
    const before = matchFollowed(keys(['c', 'd', 'e']), followed(['a', 'b', 'c', 'd']).kept(), [1]);
    expect(before).toMatchObject({ matched: 2, firstMatched: 0, lastMatched: 1, whole: false });
    const copy = keys(['a', 'b', 'c', 'd', 'e']);
    const pieces = followed(['c', 'd']);
    const inside = matchFollowed(copy, pieces.kept(), [3]);
    expect(inside).toMatchObject({ matched: 2, firstMatched: 2, lastMatched: 3, whole: true });
  });

  it('finds the last piece cut short, by a start long enough to tell it', () => {
    const long = 'a line long enough to be told by its start';
    expect(handedOf(['x', long, 'y'], ['x', long.slice(0, 20)])).toBe('110');
    // Cut inside a character: its replacement is not part of the start.
    expect(handedOf(['x', `${long}é`, 'y'], ['x', `${long}\ufffd`])).toBe('110');
    // A short start is too common: the piece before it anchors instead.
    expect(handedOf(['x', 'ab1', 'ab2'], ['x', 'ab'])).toBe('100');
  });

  it('passes over a piece the copy does not hold (a line Podman cut in two as it stopped)', () => {
    expect(handedOf(['a', 'b', 'cccc', 'd', 'e'], ['a', 'b', 'cc', 'cc', 'd'])).toBe('11010');
    // The follow's older pieces, from before the copy began, are not looked for without end.
    const older = Array.from({ length: 1000 }, (_, i) => `old ${i}`);
    expect(handedOf(['a', 'b'], [...older, 'a'])).toBe('10');
  });

  it('marks nothing when the copy holds none of its last pieces (emptied past them)', () => {
    const match = matchFollowed(keys(['y1', 'y2']), followed(['x1', 'x2', 'x3']).kept(), []);
    expect(match).toMatchObject({ matched: 0, firstMatched: -1, lastMatched: -1, whole: false });
    expect(Array.from(match.handed)).toEqual([0, 0]);
  });
});
