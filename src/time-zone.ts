import { readFileSync, readlinkSync } from 'node:fs';

/** What processTimeZone reads: the environment and two files, swapped in tests. */
export interface TimeZoneSources {
  env: NodeJS.ProcessEnv;
  readLink(path: string): string;
  readFile(path: string): string;
}

const SYSTEM: TimeZoneSources = {
  env: process.env,
  readLink: (path) => readlinkSync(path),
  readFile: (path) => readFileSync(path, 'utf8'),
};

/**
 * The time zone this process's local time follows, as the C library and ICU find it on Linux: `TZ`,
 * else the zone `/etc/localtime` links to, else `/etc/timezone`, else UTC. Read from them rather than
 * from `Intl.DateTimeFormat().resolvedOptions()`, which loads ICU's locale data: 8 MB more RSS for the
 * daemon's whole life, to name the zone in one log line.
 */
export function processTimeZone(sources: TimeZoneSources = SYSTEM): string {
  const tz = sources.env.TZ?.replace(/^:/, '').trim();
  if (tz) return zoneOfPath(tz) ?? tz;
  try {
    const zone = zoneOfPath(sources.readLink('/etc/localtime'));
    if (zone) return zone;
  } catch {
    // Not a link (a copy of the zone file, or none): /etc/timezone may name it.
  }
  try {
    const named = sources.readFile('/etc/timezone').trim();
    if (named) return named;
  } catch {
    // Neither file: the C library's default.
  }
  return 'UTC';
}

/**
 * `/usr/share/zoneinfo/Europe/Berlin` (or `../usr/share/zoneinfo/posix/Europe/Berlin`) → `Europe/Berlin`;
 * undefined for a path that is not in a zoneinfo directory.
 */
function zoneOfPath(path: string): string | undefined {
  const at = path.lastIndexOf('zoneinfo/');
  if (at === -1) return undefined;
  const zone = path.slice(at + 'zoneinfo/'.length).replace(/^(posix|right)\//, '');
  return zone === '' ? undefined : zone;
}
