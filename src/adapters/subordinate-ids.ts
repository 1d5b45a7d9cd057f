import { readFileSync } from 'node:fs';

/**
 * The subordinate id files a rootful Podman takes `--userns=auto` ranges from: the entries of its
 * `containers` user in /etc/subuid and /etc/subgid (`user:start:count` lines).
 */

export const SUBUID_FILE = '/etc/subuid';
export const SUBGID_FILE = '/etc/subgid';
/** The user whose entries a rootful Podman 4 gives out for `--userns=auto` (storage.conf's default). */
export const AUTO_USERNS_USER = 'containers';

export interface SubordinateRange {
  user: string;
  start: number;
  count: number;
}

/** The well-formed `user:start:count` lines of a subuid/subgid file; others are skipped, as Podman does. */
export function parseSubordinateIds(text: string): SubordinateRange[] {
  const ranges: SubordinateRange[] = [];
  for (const line of text.split('\n')) {
    const match = /^([^:#\s][^:]*):(\d{1,10}):(\d{1,10})\s*$/.exec(line);
    if (match === null) continue;
    ranges.push({ user: match[1] as string, start: Number(match[2]), count: Number(match[3]) });
  }
  return ranges;
}

/** A file's ranges; undefined when it cannot be read (missing: no ranges at all). */
export function readSubordinateIds(path: string): SubordinateRange[] | undefined {
  try {
    return parseSubordinateIds(readFileSync(path, 'utf8'));
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? [] : undefined;
  }
}

/**
 * The first `count` ids from 2,000,000 on (above what people, systemd and a rootless user's usual
 * 100000:65536 take) that overlap no range of either file: the line an operator can add.
 */
export function freeRangeStart(files: readonly SubordinateRange[][], count: number): number {
  const taken = files.flat().sort((a, b) => a.start - b.start);
  let start = 2_000_000;
  for (const range of taken) {
    if (range.start + range.count <= start) continue;
    if (range.start >= start + count) break;
    start = range.start + range.count;
  }
  return start;
}
