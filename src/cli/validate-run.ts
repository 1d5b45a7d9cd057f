import { hostsOf } from '../config/hosts.js';
import { describeListen } from '../config/http.js';
import { hideSecretParts } from '../config/quoted.js';
import type { AgentConfig, Resources, ScheduleConfig } from '../config/types.js';
import { type ConfigWarning, configWarnings } from '../config/warnings.js';
import { shownWebhookUrl } from '../config/webhook-url.js';
import { formatDuration } from '../duration.js';
import { describeAgent } from '../sessions/agent-view.js';
import { nextFiring } from '../sessions/schedule.js';
import { localTimeZoneProblem, localUtcOffset, processTimeZone } from '../time-zone.js';
import { reachLines } from './agents.js';
import { type ClientIo, printJson } from './client-io.js';
import { loadSettingsOrFailure } from './config-option.js';
import { EXIT } from './exit-codes.js';

export interface ValidateOptions {
  config?: string | undefined;
  json: boolean;
}

/**
 * `agentd validate`, loaded only when it runs: `agentd help` loads every command to list them, and this
 * part's imports (the configuration's loader and checks) made it several hundred ms of CPU.
 */
export async function runValidate(options: ValidateOptions, io: ClientIo): Promise<number> {
  const settings = await loadSettingsOrFailure(options.config, io.stderr);
  if ('error' in settings) {
    if (options.json) printJson(io, { valid: false, ...settings, code: EXIT.failed });
    return EXIT.failed;
  }
  // Valid, and still worth a second look: said, not refused.
  const warnings = [...configWarnings(settings), ...zoneWarnings(settings.agents)];
  if (options.json) {
    printJson(io, {
      valid: true,
      file: settings.file,
      socket: settings.daemon.socket,
      stateDir: settings.daemon.stateDir,
      maxSessions: settings.daemon.maxSessions,
      agents: settings.agents.map((agent) => describeAgent(agent, { hosts: hostsOf(settings) })),
      warnings,
    });
    return EXIT.succeeded;
  }
  const out = [`${settings.file}: valid, ${settings.agents.length} agent(s)`];
  out.push(
    `  socket ${settings.daemon.socket}`,
    `  state dir ${settings.daemon.stateDir}`,
    `  max sessions ${settings.daemon.maxSessions}`,
  );
  const { http, notify } = settings.daemon;
  if (http) {
    out.push(
      `  HTTP API on ${http.tls ? 'https' : 'http'}://${describeListen(http.listen)}, tokens ${http.tokens.map((t) => `${t.name} <- ${t.source.raw} (${t.scopes.join(', ')})`).join('; ')}`,
    );
  }
  for (const target of notify)
    out.push(`  notify ${shownWebhookUrl(target.url)} (signed with ${target.secret.raw})`);
  const hosts = hostsOf(settings);
  for (const agent of settings.agents) {
    const timeout =
      agent.timeoutMs === undefined ? 'no timeout' : `timeout ${formatDuration(agent.timeoutMs)}`;
    out.push(
      `- ${agent.name}: ${agent.image} ${JSON.stringify(agent.command.map(hideSecretParts))}`,
      `    repo ${agent.repo ?? '(none: give one per trigger)'}, network ${agent.network}, ${timeout}`,
      `    credentials ${agent.credentials.map((c) => `${c.name} <- ${c.source.raw}`).join(', ') || 'none'}${agent.repoToken ? `, repo_token <- ${agent.repoToken.raw}` : ''}`,
    );
    if (agent.repoToken) {
      out.push(
        `    repo_token sent only to ${agent.repoTokenOrigins.join(', ')}${agent.repoTokenRequired ? '; triggers for other origins are rejected' : '; other origins clone without it'}`,
      );
    }
    out.push(`    limits ${describeLimits(agent.resources)}`);
    if (agent.capAdd.length > 0) {
      out.push(`    cap_add ${agent.capAdd.join(', ')}: the command runs with these capabilities`);
    }
    out.push(...reachLines(describeAgent(agent, { hosts })));
    if (agent.userNamespace === 'auto') {
      out.push(
        '    user_namespace auto: each session runs as host uids of its own (the containers ranges of /etc/subuid and /etc/subgid)',
      );
    }
    if (agent.maxConcurrent !== undefined) out.push(`    max_concurrent ${agent.maxConcurrent}`);
    if (agent.schedule) out.push(`    ${describeSchedule(agent.schedule)}`);
  }
  for (const w of warnings) out.push(`warning: ${w.path}: ${w.message}; ${w.fix}`);
  io.stdout.write(`${out.join('\n')}\n`);
  return EXIT.succeeded;
}

/**
 * A schedule without `timezone:` follows this process's local time, which V8 leaves at UTC for a TZ it
 * cannot read: such a schedule would fire hours off the zone named. One warning per such agent.
 */
export function zoneWarnings(agents: readonly AgentConfig[]): ConfigWarning[] {
  // Each with its index, found once: agents.indexOf for each one read 648 million entries for 36,000 agents (0.3 s).
  const local = agents.flatMap((agent, at) =>
    agent.schedule !== undefined && agent.schedule.timezone === undefined ? [{ agent, at }] : [],
  );
  const problem = local.length === 0 ? undefined : localTimeZoneProblem(processTimeZone());
  if (problem === undefined) return [];
  return local.map(({ agent, at }) => ({
    path: `agents[${at}].schedule`,
    agent: agent.name,
    message: `has no timezone: and follows this process's time zone (TZ, else /etc/localtime): ${problem}`,
    fix: 'set TZ to a zone name as in /usr/share/zoneinfo (case matters), or give the schedule a timezone:',
  }));
}

function describeSchedule(schedule: ScheduleConfig): string {
  // Without `timezone:` a schedule follows the zone of the process reading it: here, this validate's; the
  // daemon's is the one it had at its start (its daemon.starting log line says which).
  const zone =
    schedule.timezone ??
    `this process's time zone (${processTimeZone()}, now UTC${localUtcOffset()}; the daemon uses its own, as at its start)`;
  const next = nextFiring(schedule, new Date())?.toISOString() ?? 'never';
  return `schedule "${schedule.cron}" in ${zone}, overlap ${schedule.overlap}, catch_up ${schedule.catchUp}; next firing ${next}`;
}

function describeLimits(r: Resources): string {
  const swap = r.memorySwap.bytes === r.memory.bytes ? 'no swap' : `memory+swap ${r.memorySwap.text}`;
  const cpus = r.cpus === undefined ? 'cpus unlimited' : `cpus ${r.cpus}`;
  return `memory ${r.memory.text} (${swap}), ${cpus}, pids ${r.pids}, disk ${r.disk.text}, output ${r.output.text}${r.cache === undefined ? '' : `, cache ${r.cache.text}`}`;
}
