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

/**
 * This process's local UTC offset at `at`, like `+01:00`: what its local time, and so a schedule without
 * `timezone:`, follows, whatever TZ names. Read without ICU's zone data.
 */
export function localUtcOffset(at: Date = new Date()): string {
  return offsetText(-at.getTimezoneOffset());
}

/**
 * Why this process's local time is not that of `zone` (processTimeZone's name for it), if it is not. A
 * TZ that V8 cannot read leaves local time at UTC under a name that says otherwise: `europe/berlin` (case
 * matters there, not in `timezone:`), a POSIX rule like `CET-1CEST,M3.5.0,M10.5.0/3` (the C library and
 * `date` read it, V8 does not). Compares the offsets now and in half a year (daylight saving time). Loads
 * ICU's zone data, 8 MB of RSS: for validate, not the daemon.
 */
export function localTimeZoneProblem(zone: string, at: Date = new Date()): string | undefined {
  // A zone file's path (TZ=/etc/myzone): V8 reads the file; there is no name to compare with.
  if (zone.startsWith('/')) return undefined;
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
    });
  } catch {
    return `${JSON.stringify(zone)} is not a time zone; this process keeps UTC${localUtcOffset(at)}`;
  }
  for (const instant of [at, new Date(at.getTime() + 182 * 86_400_000)]) {
    const p = Object.fromEntries(
      format.formatToParts(instant).map((part) => [part.type, Number(part.value)]),
    );
    const wall = Date.UTC(p.year ?? 0, (p.month ?? 1) - 1, p.day ?? 1, p.hour ?? 0, p.minute ?? 0);
    const zoneMinutes = Math.round((wall - Math.floor(instant.getTime() / 60_000) * 60_000) / 60_000);
    if (zoneMinutes !== -instant.getTimezoneOffset()) {
      return (
        `${JSON.stringify(zone)} is not read as that zone (UTC${offsetText(zoneMinutes)} on ${instant.toISOString().slice(0, 10)}); ` +
        `this process keeps UTC${localUtcOffset(instant)}`
      );
    }
  }
  return undefined;
}

function offsetText(minutes: number): string {
  const abs = Math.abs(minutes);
  return `${minutes < 0 ? '-' : '+'}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}
