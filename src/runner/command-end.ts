/**
 * The setup step's last word: `MARKER ended STATUS OOM_KILLS`, printed when the agent's command (or
 * the clone) has ended. Only the setup step knows the marker, so an agent cannot forge it; the line
 * may follow output of the agent's that did not end with a newline, so it is looked for anywhere in
 * a line.
 */
export interface CommandEnd {
  /** The exit status the setup step saw (128 + N for signal N). */
  status: number;
  /** How many processes the kernel's OOM killer has killed in the container. */
  oomKills: number;
}

/** The report in `line`, and the agent's output before it on the same line; undefined when there is none. */
export function findCommandEnd(
  marker: string,
  line: string,
): { before: string; end: CommandEnd } | undefined {
  if (marker === '') return undefined;
  // The first `MARKER ended `, found without building that text for every line.
  let at = line.indexOf(marker);
  while (at !== -1 && !line.startsWith(' ended ', at + marker.length)) at = line.indexOf(marker, at + 1);
  if (at === -1) return undefined;
  const match = /^ended (\d+) (\d+)$/.exec(line.slice(at + marker.length + 1));
  if (!match) return undefined;
  return { before: line.slice(0, at), end: { status: Number(match[1]), oomKills: Number(match[2]) } };
}

/**
 * Why a session that failed did: "out of memory (limit 2g)" when the OOM killer struck in it, since
 * Podman does not say so (State.OOMKilled stays false on cgroup v1). Undefined otherwise.
 */
export function outOfMemoryReason(end: CommandEnd | undefined, memoryLimit: string): string | undefined {
  if (end === undefined || end.oomKills === 0) return undefined;
  return `out of memory (limit ${memoryLimit})`;
}
