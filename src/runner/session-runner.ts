import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import type { PodmanClient } from '../adapters/podman.js';
import { classifyPodmanFailure, PodmanError } from '../adapters/podman-errors.js';
import { defaultResources } from '../config/resources.js';
import { MAX_SECRET_BYTES, SECRET_MOUNT_DIR } from '../constants.js';
import { AgentdError, errorMessage } from '../errors.js';
import { parseRepoUrl } from '../repo-url.js';
import type { Phase, RunResult, SessionInvocation, SessionSpec } from '../sessions/types.js';
import { type CommandEnd, findCommandEnd, outOfMemoryReason } from './command-end.js';
import { ambientCapabilities, containerPolicy } from './container-policy.js';
import { createMasker } from './mask.js';
import { containerName, ownershipLabels, secretName } from './names.js';
import { SessionLog } from './session-log.js';
import { SETUP_ENTRYPOINT } from './setup-script.js';

export type RunEvent =
  | { type: 'phase'; phase: Phase }
  | { type: 'output'; stream: 'stdout' | 'stderr'; line: string }
  /** Container exists: ids for records and crash recovery. */
  | { type: 'container'; name: string };

export interface RunOptions {
  signal: AbortSignal;
  onEvent: (event: RunEvent) => void;
  /** Per-session log file (bounded); output is appended there as well. */
  logFile: string;
}

export interface PodmanRunnerOptions {
  podman: PodmanClient;
  instanceId: string;
  stopGraceMs: number;
  logMaxBytes: number;
  /** Receives teardown problems that do not change the outcome. */
  warn?: (message: string, error: unknown) => void;
}

type StopReason = 'timeout' | 'cancel';

/** Runs one session as one supervised container, and always tears it down. */
export class PodmanRunner {
  constructor(private readonly options: PodmanRunnerOptions) {}

  async run(spec: SessionSpec, invocation: SessionInvocation, options: RunOptions): Promise<RunResult> {
    return new SessionRun(this.options, spec, invocation, options).execute();
  }

  /** Supervises a container an earlier daemon started, to the end, and tears it down. */
  async adopt(adoption: Adoption, options: RunOptions): Promise<RunResult> {
    return new SessionRun(this.options, adoption.spec, adoption.invocation, options, adoption).execute();
  }
}

export interface Adoption {
  /** The session as configured. Its output is masked with the values its container holds, not these. */
  spec: SessionSpec;
  invocation: SessionInvocation;
  container: string;
  phase: 'cloning' | 'running';
  /** What is left of the session's timeout. */
  remainingMs?: number;
}

class SessionRun {
  private phase: Phase = 'creating';
  private phaseStartedAt = performance.now();
  private readonly timings: RunResult['timings'] = {};
  private readonly secrets: string[] = [];
  /** A secret whose create was cut short by a stop: podman may have made it anyway. */
  private pendingSecret: string | undefined;
  private secretsRemoval: Promise<void> | undefined;
  private container: string | undefined;
  private stopReason: StopReason | undefined;
  private readonly stopRequested: Promise<StopReason>;
  private requestStop: (reason: StopReason) => void = () => {};
  private readonly log: SessionLog;
  /** Undefined while output is withheld: an adopted session whose values could not be read back. */
  private mask: ((line: string) => string) | undefined;
  private withheldLines = 0;
  private readonly setupOutput: string[] = [];
  /** The setup step announced itself: the container runs. */
  private sawStart = false;
  /** The agent's command runs: no more marker lines are read, but for the setup step's last. */
  private commandStarted = false;
  /** The setup step's report of how the command (or the clone) ended. */
  private commandEnd: CommandEnd | undefined;

  constructor(
    private readonly options: PodmanRunnerOptions,
    private readonly spec: SessionSpec,
    private readonly invocation: SessionInvocation,
    private readonly run: RunOptions,
    private readonly adoption?: Adoption,
  ) {
    this.stopRequested = new Promise((resolve) => {
      this.requestStop = (reason) => {
        if (this.stopReason) return;
        this.stopReason = reason;
        resolve(reason);
      };
    });
    this.log = new SessionLog(run.logFile, options.logMaxBytes);
    const values = spec.credentials.map((c) => c.value);
    if (invocation.repoToken) values.push(invocation.repoToken);
    this.mask = createMasker(values);
  }

  async execute(): Promise<RunResult> {
    const deadline = this.adoption ? this.adoption.remainingMs : this.spec.timeoutMs;
    const timer =
      deadline === undefined ? undefined : setTimeout(() => this.requestStop('timeout'), deadline);
    const onAbort = () => this.requestStop('cancel');
    if (this.run.signal.aborted) onAbort();
    this.run.signal.addEventListener('abort', onAbort);
    // Podman calls made while creating are cut short by a stop request.
    const creation = new AbortController();
    void this.stopRequested.then(() => creation.abort());
    let result: Omit<RunResult, 'timings'>;
    try {
      if (this.adoption) {
        result = await this.superviseAdopted(this.adoption);
      } else {
        this.enter('creating');
        result = await this.supervise(creation.signal);
      }
    } catch (error) {
      result = this.fromError(error);
    } finally {
      clearTimeout(timer);
      this.run.signal.removeEventListener('abort', onAbort);
    }
    const teardownProblem = await this.teardown();
    // Output that could not be written (a full state dir) is noted in the log as soon as it can be.
    this.log.close();
    if (teardownProblem && result.outcome === 'succeeded') {
      result = { ...result, outcome: 'error', message: teardownProblem };
    }
    return { ...result, timings: this.timings };
  }

  private async supervise(signal: AbortSignal): Promise<Omit<RunResult, 'timings'>> {
    const { podman, instanceId } = this.options;
    const { spec, invocation } = this;
    const labels = ownershipLabels(instanceId, invocation.sessionId, spec.agent);
    const env: Record<string, string> = {
      ...spec.env,
      AGENTD_AGENT: spec.agent,
      AGENTD_SESSION_ID: invocation.sessionId,
      AGENTD_REPO_URL: invocation.repoUrl,
      AGENTD_SETUP_MARKER: `@@agentd-${randomBytes(8).toString('hex')}@@`,
    };
    if (invocation.workUnit !== undefined) env.AGENTD_SETUP_WORK_UNIT = invocation.workUnit;
    const caps = ambientCapabilities(spec.capAdd);
    if (caps !== undefined) env.AGENTD_SETUP_CAPS = caps;
    for (const notice of invocation.notices ?? []) this.output(`agentd: ${notice}`);
    const mounts: { name: string; target: string }[] = [];
    const secretBacked: string[] = [];
    const withValues: { target: string; value: Uint8Array }[] = spec.credentials.map((c) => ({
      target: c.name,
      value: c.value,
    }));
    if (invocation.repoToken !== undefined)
      withValues.push({ target: '.repo_token', value: invocation.repoToken });
    for (const { target, value } of withValues) {
      if (value.length > MAX_SECRET_BYTES) {
        throw new AgentdError(
          'CREDENTIAL_TOO_LARGE',
          `credential ${target === '.repo_token' ? 'repo_token' : target} is ${value.length} bytes; Podman secrets must be under 512000 bytes`,
          { operation: 'create secrets' },
        );
      }
    }
    if (invocation.repoToken !== undefined) {
      // git sends the token to this origin only (http.<origin>/.extraHeader).
      env.AGENTD_SETUP_TOKEN_ORIGIN = repoOrigin(invocation.repoUrl);
    }
    for (const { target, value } of withValues) {
      // Podman refuses empty secrets; an empty value is not a secret, so it is set as an empty variable.
      if (value.length === 0) {
        env[target] = '';
        continue;
      }
      const name = secretName(instanceId, invocation.sessionId, this.secrets.length);
      this.pendingSecret = name;
      // Never cut short by a stop: Podman 4.3 rewrites its secrets file in place, and a `secret create`
      // killed mid-write leaves it empty, breaking secrets for every user of this host. It is quick;
      // a stop waits for it (its deadline still ends a hung one).
      await podman.createSecret(name, value, labels);
      this.pendingSecret = undefined;
      this.secrets.push(name);
      mounts.push({ name, target: `${SECRET_MOUNT_DIR}/${target}` });
      if (target !== '.repo_token') secretBacked.push(target);
      if (this.stopReason || signal.aborted) return this.stopped(undefined);
    }
    if (secretBacked.length > 0) env.AGENTD_SETUP_CREDENTIALS = secretBacked.join(' ');

    const name = containerName(instanceId, spec.agent, invocation.sessionId);
    const graceSeconds = Math.ceil(this.options.stopGraceMs / 1000);
    // Set before creating: a create cut short by a stop may still leave the container (rm --ignore copes).
    this.container = name;
    await podman.createContainer({
      name,
      image: spec.image,
      labels,
      env,
      secrets: mounts,
      network: spec.network,
      ...containerPolicy(spec),
      // The engine's own deadline stops the container even if this daemon never comes back.
      timeoutSeconds:
        spec.timeoutMs === undefined ? undefined : Math.ceil(spec.timeoutMs / 1000) + graceSeconds + 5,
      entrypoint: SETUP_ENTRYPOINT.slice(0, 1),
      args: [...SETUP_ENTRYPOINT.slice(1), ...spec.command],
      signal,
    });
    this.run.onEvent({ type: 'container', name });
    if (this.stopReason) return this.stopped(undefined);

    const marker = env.AGENTD_SETUP_MARKER ?? '';
    const attached = podman.startAttached(name, (raw) => this.handleLine(marker, raw));
    const exitCode = await this.untilExit(name, attached.exitCode);
    if (this.stopReason) return this.stopped(exitCode);
    if (!this.sawStart) {
      // The container never ran our setup: podman or the runtime failed to start it.
      throw new PodmanError('PODMAN_FAILED', '', {
        operation: `start container ${name}`,
        argv: ['start', '--attach', name],
        exitCode,
        stderr: attached.stderr(),
      });
    }
    return this.settle(exitCode);
  }

  private async superviseAdopted(adoption: Adoption): Promise<Omit<RunResult, 'timings'>> {
    const { podman } = this.options;
    const name = adoption.container;
    this.container = name;
    this.sawStart = true;
    this.enter(adoption.phase);
    await this.maskWithContainerValues(name);
    const info = await podman.inspectContainer(name);
    const marker =
      (info?.Config.Env ?? []).find((e) => e.startsWith('AGENTD_SETUP_MARKER='))?.slice(20) ?? '';
    // Output already in the log stays: replay the container's output and skip what was written; when
    // the bounded log was trimmed, resume from its last write instead.
    let skip = this.log.writtenLines();
    const since = skip === undefined ? this.log.lastWrite()?.toISOString() : undefined;
    // Without a replay from the start, the markers are not seen again.
    this.commandStarted = skip === undefined && adoption.phase === 'running';
    const followed = podman.followLogs(name, since, (raw) => {
      const ended = findCommandEnd(marker, raw);
      if (ended !== undefined) {
        this.commandEnd = ended.end;
        // The output before it on the line was logged already, unless the log was cut short there.
        if (ended.before !== '') {
          if (skip !== undefined && skip > 0) skip--;
          else this.output(ended.before);
        }
        return;
      }
      if (!this.commandStarted && marker !== '' && raw.startsWith(`${marker} `)) {
        // Replayed markers only move the phase forward; secrets are already gone.
        const what = raw.slice(marker.length + 1);
        if (what === 'phase running') {
          this.commandStarted = true;
          if (this.phase !== 'running') this.enter('running');
        } else if (what === 'phase cloning' && this.phase !== 'cloning' && this.phase !== 'running') {
          this.enter('cloning');
        }
        return;
      }
      if (skip !== undefined && skip > 0) {
        skip--;
        return;
      }
      this.handleLine(marker, raw);
    });
    const exitCode = await this.untilExit(name, podman.wait(name));
    // The log stream ends with the container; do not wait for it forever.
    await Promise.race([followed.exitCode.catch(() => -1), new Promise((r) => setTimeout(r, 5000).unref())]);
    if (this.withheldLines > 0) this.notice(`[agentd: ${this.withheldLines} line(s) of output withheld]`);
    return this.stopReason ? this.stopped(exitCode) : this.settle(exitCode);
  }

  /**
   * An adopted session masks with the values its container really received (a credential source may
   * have changed since): the copies of its secrets the container keeps. When they cannot be read, the
   * output is withheld (fail closed), and the log and followers are told why.
   */
  private async maskWithContainerValues(name: string): Promise<void> {
    try {
      const files = await this.options.podman.readContainerFiles(name, SECRET_MOUNT_DIR);
      this.mask = createMasker([...files.values()]);
    } catch (error) {
      this.mask = undefined;
      this.notice(
        `[agentd: output withheld: this session was adopted after a daemon restart, and the credential values its container was given could not be read back from it to mask its output (${errorMessage(error)})]`,
      );
    }
  }

  /** A line agentd adds to the session's output. */
  private notice(line: string): void {
    this.log.append(line);
    this.run.onEvent({ type: 'output', stream: 'stdout', line });
  }

  /** Waits for the container to exit; a stop request stops it (SIGTERM, grace, SIGKILL) first. */
  private async untilExit(name: string, exit: Promise<number>): Promise<number> {
    const first = await Promise.race([
      exit.then((code) => ({ code })),
      this.stopRequested.then((reason) => ({ reason })),
    ]);
    if ('code' in first) return first.code;
    await this.options.podman.stopContainer(name, Math.ceil(this.options.stopGraceMs / 1000));
    return exit;
  }

  /** Reads the setup step's marker lines (hidden) until the command starts; everything else is output. */
  private handleLine(marker: string, raw: string): void {
    const ended = findCommandEnd(marker, raw);
    if (ended !== undefined) {
      this.commandEnd = ended.end;
      if (ended.before !== '') this.output(ended.before);
      return;
    }
    if (!this.commandStarted && marker !== '' && raw.startsWith(`${marker} `)) {
      const what = raw.slice(marker.length + 1);
      if (what === 'started') {
        this.sawStart = true;
        // The container holds its own copy of mounted secrets: the objects can go now.
        this.secretsRemoval = this.removeSecrets();
      } else if (what === 'phase cloning') {
        this.enter('cloning');
      } else if (what === 'phase running') {
        this.commandStarted = true;
        this.enter('running');
      }
      return;
    }
    this.output(raw);
  }

  /** One line of the session's output: masked, kept for a setup failure's message, logged, streamed. */
  private output(raw: string): void {
    if (!this.mask) {
      this.withheldLines++;
      return;
    }
    const line = this.mask(raw);
    if (!this.commandStarted) this.rememberSetupOutput(line);
    this.log.append(line);
    this.run.onEvent({ type: 'output', stream: 'stdout', line });
  }

  private settle(exitCode: number): Omit<RunResult, 'timings'> {
    const { spec, invocation } = this;
    const oom = outOfMemoryReason(this.commandEnd, (spec.resources ?? defaultResources()).memory.text);
    if (!this.commandStarted) {
      const output = this.setupOutput.slice(-5).join(' | ') || `setup exited with code ${exitCode}`;
      const why = oom === undefined ? output : `${oom}: ${output}`;
      return {
        outcome: 'failed',
        exitCode,
        phase: this.phase,
        message:
          this.phase === 'cloning'
            ? `git clone of ${invocation.repoUrl} failed: ${why}`
            : `setup failed: ${why}`,
      };
    }
    if (exitCode === 0) return { outcome: 'succeeded', exitCode, phase: 'running' };
    const signalName = exitCode > 128 && exitCode < 160 ? signalOf(exitCode - 128) : undefined;
    return {
      outcome: 'failed',
      exitCode,
      ...(signalName ? { signal: signalName } : {}),
      phase: 'running',
      message:
        oom === undefined
          ? describeExit(exitCode, spec.command[0] ?? '')
          : `${oom}: ${describeExit(exitCode, spec.command[0] ?? '')}`,
    };
  }

  private stopped(exitCode: number | undefined): Omit<RunResult, 'timings'> {
    const base = { phase: this.phase, ...(exitCode === undefined ? {} : { exitCode }) };
    if (this.stopReason === 'timeout') {
      return {
        ...base,
        outcome: 'timed_out',
        message: `session exceeded its timeout of ${Math.round((this.spec.timeoutMs ?? 0) / 1000)}s while ${this.phase}`,
      };
    }
    return { ...base, outcome: 'cancelled', message: `session cancelled while ${this.phase}` };
  }

  private fromError(error: unknown): Omit<RunResult, 'timings'> {
    if (this.stopReason) return this.stopped(undefined);
    if (error instanceof PodmanError && error.message === '') {
      // Classify a failed start now that its stderr is known.
      const stderr = error.stderr;
      const classified = classifyStart(error, stderr);
      return { outcome: 'error', phase: this.phase, message: classified };
    }
    return { outcome: 'error', phase: this.phase, message: errorMessage(error) };
  }

  private enter(phase: Phase): void {
    const now = performance.now();
    if (phase !== this.phase) {
      this.timings[this.phase] = Math.round(now - this.phaseStartedAt);
    }
    this.phase = phase;
    this.phaseStartedAt = now;
    this.run.onEvent({ type: 'phase', phase });
  }

  private rememberSetupOutput(line: string): void {
    this.setupOutput.push(line);
    if (this.setupOutput.length > 20) this.setupOutput.shift();
  }

  private removeSecrets(): Promise<void> {
    const names = this.secrets.splice(0);
    return this.options.podman.removeSecrets(names).catch((error: unknown) => {
      // Left for teardown to retry.
      this.secrets.push(...names);
      this.options.warn?.('secret removal after start failed; teardown retries', error);
    });
  }

  /** Removes everything the session made; returns a problem description when something stays behind. */
  private async teardown(): Promise<string | undefined> {
    const started = performance.now();
    const previous = this.phase;
    this.enter('tearing_down');
    this.phase = previous;
    const problems: string[] = [];
    await this.secretsRemoval;
    // A secret whose create was cut short may exist or not; removal takes an absent one as removed.
    if (this.pendingSecret) this.secrets.push(this.pendingSecret);
    const { podman } = this.options;
    const attempts: Promise<void>[] = [];
    const secrets = this.secrets.splice(0);
    if (secrets.length > 0) attempts.push(this.twice(() => podman.removeSecrets(secrets)));
    const container = this.container;
    if (container) attempts.push(this.twice(() => podman.removeContainers([container])));
    for (const outcome of await Promise.allSettled(attempts)) {
      if (outcome.status === 'rejected') {
        problems.push(errorMessage(outcome.reason));
        this.options.warn?.('teardown failed', outcome.reason);
      }
    }
    this.timings.tearing_down = Math.round(performance.now() - started);
    return problems.length > 0 ? `teardown failed: ${problems.join('; ')}` : undefined;
  }

  /** A teardown step gets a second try: one transient podman failure must not leave objects behind. */
  private async twice(step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (error) {
      this.options.warn?.('teardown step failed; trying once more', error);
      await new Promise((resolve) => setTimeout(resolve, 500));
      await step();
    }
  }
}

/** The origin of a URL the trigger check has normalised. */
function repoOrigin(url: string): string {
  const check = parseRepoUrl(url);
  if (!check.ok) throw new AgentdError('INTERNAL', 'a repository URL reached the runner unchecked');
  return check.repo.origin;
}

function classifyStart(error: PodmanError, stderr: string): string {
  return classifyPodmanFailure({
    operation: error.operation ?? 'start container',
    argv: error.argv,
    exitCode: error.exitCode,
    stderr,
  }).message;
}

function describeExit(code: number, command: string): string {
  if (code === 127)
    return `command not found: ${command} (exit 127); check the agent's command and the image`;
  if (code === 126) return `command cannot be executed: ${command} (exit 126); check its permissions`;
  if (code > 128 && code < 160)
    return `command killed by ${signalOf(code - 128) ?? `signal ${code - 128}`} (exit ${code})`;
  return `command exited with code ${code}`;
}

function signalOf(n: number): string | undefined {
  return Object.entries(osConstants.signals).find(([, value]) => value === n)?.[0];
}
