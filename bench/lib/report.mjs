import { summarize } from './stats.mjs';

/** Ratio and verdict of one row; rows compare agentd (a) with its baseline (b). */
export function judge(row) {
  const ratio = row.a.median / row.b.median;
  // Median of the per-round ratios: each round ran A and B back to back, so this cancels slow drifts in load.
  const { samples: a } = row.a;
  const { samples: b } = row.b;
  const pairedRatio = a.length === b.length ? summarize(a.map((v, i) => v / b[i])).median : undefined;
  let met;
  if (row.target?.max !== undefined) met = ratio <= row.target.max;
  if (row.target?.absMax !== undefined) met = row.a.median < row.target.absMax;
  return {
    ...row,
    ratio,
    ...(pairedRatio === undefined ? {} : { pairedRatio }),
    ...(met === undefined ? {} : { met }),
  };
}

function fmt(value, unit) {
  if (value === undefined || Number.isNaN(value)) return '–';
  if (unit === 'MB') return `${value.toFixed(1)} MB`;
  return value >= 10_000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`;
}

function cell(s, unit) {
  return `${fmt(s.median, unit)} (${fmt(s.min, unit)}–${fmt(s.max, unit)})`;
}

/** The Markdown table for the README. */
export function markdown(rows, meta) {
  const lines = [
    `Measured ${meta.date} on ${meta.host} (${meta.cpus} cores, load ${meta.load}), Node ${meta.node}, Podman ${meta.podman}; ` +
      'medians (min–max) of interleaved runs after a warm-up; ratio = agentd median / baseline median; ' +
      'paired = median of the per-round ratios.',
    '',
    '| Benchmark | Runs | agentd | Baseline | Baseline: median (min–max) | agentd: median (min–max) | Ratio | Paired | Target |',
    '|---|---:|---|---|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    const verdict = r.target ? `${r.target.text}: ${r.met ? 'met' : '**missed**'}` : '';
    lines.push(
      `| ${r.name} | ${r.a.n} | ${r.a.label} | ${r.b.label} | ${cell(r.b, r.unit)} | ${cell(r.a, r.unit)} | ${r.ratio.toFixed(2)} | ${r.pairedRatio?.toFixed(2) ?? '–'} | ${verdict} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Podman calls per session, from the counting wrapper. */
export function callsMarkdown(calls) {
  if (!calls) return '';
  const per = calls.agentd.map((c) => c.length);
  const per10 = (calls.agentd10 ?? []).map((c) => c.length);
  const list = (c) => c.map((l) => `\`${l}\``).join(', ');
  return [
    '',
    `Podman processes per session: agentd ${per.join(', ')} (sessions 1–${per.length}); with 10 credentials ${per10.join(', ') || '–'}; bare script ${calls.baseline.length}.`,
    `- agentd session: ${list(calls.agentd.at(-1) ?? [])}`,
    ...(per10.length ? [`- agentd session, 10 credentials: ${list(calls.agentd10.at(-1) ?? [])}`] : []),
    `- bare script: ${list(calls.baseline)}`,
    `- agentd start with nothing to reconcile: ${list(calls.startup)}`,
    '',
  ].join('\n');
}

export function growthMarkdown(growth) {
  if (!growth?.length) return '';
  const lines = [
    '',
    'Startup reconciliation by number of orphan secrets and dead containers, medians:',
    '',
    '| Orphan secrets | Dead containers | agentd start → ready | Batched removal | Empty start | agentd − empty start |',
    '|---:|---:|---:|---:|---:|---:|',
  ];
  for (const g of growth) {
    lines.push(
      `| ${g.secrets} | ${g.containers ?? 50} | ${fmt(g.agentdMs)} | ${fmt(g.removalMs)} | ${fmt(g.emptyStartMs)} | ${fmt(g.agentdMs - g.emptyStartMs)} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Where the session overhead goes: the CLI process (whole trigger − socket trigger) vs bare Node start-up. */
export function decompositionMarkdown(rows, nodeStart, nodeBareStart) {
  const whole = rows.find((r) => r.id === 'session');
  const daemon = rows.find((r) => r.id === 'session-daemon');
  const viaNode = rows.find((r) => r.id === 'session-node');
  const floor = rows.find((r) => r.id === 'session-floor');
  const floorRm = rows.find((r) => r.id === 'session-floor-rm');
  const cli = rows.find((r) => r.id === 'session-cli');
  if (!whole || !daemon || !nodeStart) return '';
  const perRound = summarize(whole.a.samples.map((ms, i) => ms - (daemon.a.samples[i] ?? Number.NaN)));
  return [
    '',
    `Session decomposition (medians of the same rounds): whole \`trigger\` ${fmt(whole.a.median)}, daemon side ` +
      `(socket trigger) ${fmt(daemon.a.median)}, bare script ${fmt(whole.b.median)}; so the CLI process adds ` +
      `${fmt(whole.a.median - daemon.a.median)}, and the daemon ${fmt(daemon.a.median - whole.b.median)} over the ` +
      `bare script. A bare \`node -e 0\` took ${fmt(nodeStart.median)} (${fmt(nodeStart.min)}–${fmt(nodeStart.max)}).`,
    ...(cli
      ? [
          `The CLI process alone (the same \`trigger --quiet\` answered at once by a socket of the bench's with a ` +
            `recorded session: start, modules, connect, replies, printing, exit) took ${fmt(cli.a.median)} ` +
            `(${fmt(cli.a.min)}–${fmt(cli.a.max)}), ${fmt(cli.a.median - cli.b.median)} over \`node -e 0\` in the same ` +
            `rounds; per round, whole \`trigger\` minus the socket trigger was ${fmt(perRound.median)} ` +
            `(${fmt(perRound.min)}–${fmt(perRound.max)}): that difference also carries the spread of two sessions.`,
        ]
      : []),
    ...(viaNode
      ? [
          `\`agentd\` (bin/agentd) runs \`trigger\` without NODE_EXTRA_CA_CERTS; \`node dist/cli/agentd.cjs trigger\`, ` +
            `which loads it, took ${fmt(viaNode.a.median)} (ratio ${viaNode.ratio.toFixed(2)}): Node before 22 parses ` +
            `that file and builds its root store at every start.`,
        ]
      : []),
    ...(floor && floorRm && nodeBareStart
      ? [
          '',
          `The floor under the whole-process target, before any work of the daemon or the CLI and without the ` +
            `secret's removal: agentd's own calls on a session's path (\`secret create\`, \`run\`, \`rm -f\`) from ` +
            `bash took ${fmt(floor.a.median)} (${floor.ratio.toFixed(2)} of the bare script), and with Node's ` +
            `start-up as bin/agentd runs it (${fmt(nodeBareStart.median)}) ${fmt(floor.a.median + nodeBareStart.median)}, ` +
            `${((floor.a.median + nodeBareStart.median) / whole.b.median).toFixed(2)}; the least any session with ` +
            `a secret could make (\`secret create\`, one \`run --rm\`) took ${fmt(floorRm.a.median)} ` +
            `(${floorRm.ratio.toFixed(2)}), with Node's start-up ` +
            `${((floorRm.a.median + nodeBareStart.median) / whole.b.median).toFixed(2)}.`,
        ]
      : []),
    '',
  ].join('\n');
}

/** Every target of the run, met or missed, with its ratio. */
export function targetsMarkdown(rows) {
  const judged = rows.filter((r) => r.target);
  if (judged.length === 0) return '';
  const lines = ['', 'Targets:', ''];
  for (const r of judged) {
    const figure =
      r.target.absMax === undefined ? `ratio ${r.ratio.toFixed(2)}` : `median ${fmt(r.a.median, r.unit)}`;
    lines.push(`- ${r.met ? 'met' : '**missed**'}: ${r.name} (${r.target.text}): ${figure}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The daemon's CPU time per MB of session output, from the output-heavy rounds. */
export function outputMarkdown(perMb, mb) {
  if (!perMb) return '';
  return `\nDaemon CPU per MB of session output (4 sessions × ${mb} MB, utime + stime of the daemon process): median ${perMb.median.toFixed(1)} ms/MB (${perMb.min.toFixed(1)}–${perMb.max.toFixed(1)}).\n`;
}
