import type { Stats } from 'node:fs';

/** What a path that is not a regular file is, in an error's words ("is a FIFO, not a regular file"). */
export function kindOf(stat: Stats): string {
  if (stat.isSymbolicLink()) return 'a symbolic link';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isDirectory()) return 'a directory';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isSocket()) return 'a socket';
  return 'an unknown kind of file';
}
