/**
 * The runner machine over real Podman, as one call: what the e2e runner tests drive. It provides the
 * machine as the daemon does (src/daemon/main.ts), reporting phases, output and the container's name
 * as events, and turns an AbortSignal into the machine's `cancel`.
 */
import { mkdirSync } from 'node:fs';
import { createActor, toPromise } from 'xstate';
import type { PodmanPort } from '../../src/adapters/podman.js';
import { workPaths } from '../../src/adapters/session-files.js';
import { runnerMachineFor } from '../../src/machines/runner.machine.js';
import { runnerActors } from '../../src/runner/actors.js';
import { SecretValue } from '../../src/secret-value.js';
import type { AssembledSession } from '../../src/sessions/assemble.js';
import type { Phase, RunResult, SessionInvocation, SessionSpec } from '../../src/sessions/types.js';
import { makeTempDir } from './resources.js';

export type RunEvent =
  | { type: 'phase'; phase: Phase }
  | { type: 'output'; line: string; stream: 'stdout' | 'stderr' | 'agentd' }
  /** The container exists. */
  | { type: 'container'; name: string };

export interface RunOptions {
  signal: AbortSignal;
  onEvent: (event: RunEvent) => void;
  logFile: string;
}

export interface RunnerOptions {
  podman: PodmanPort;
  instanceId: string;
  stopGraceMs: number;
  logMaxBytes: number;
  /** Where the sessions' work directories go (request, inputs, output archive); a temp dir by default. */
  workDir?: string;
  /** The seccomp profile file the daemon derives at start for the local Podman; Podman's default without. */
  seccompProfile?: string;
  warn?: (message: string, error: unknown) => void;
}

/** Wraps plain values as the session machine hands them to the runner. */
export function wrap(spec: SessionSpec, invocation: SessionInvocation): AssembledSession {
  const { repoToken, ...rest } = invocation;
  return {
    spec: {
      ...spec,
      credentials: spec.credentials.map((c) => ({ name: c.name, value: new SecretValue(c.value) })),
    },
    invocation: { ...rest, ...(repoToken === undefined ? {} : { repoToken: new SecretValue(repoToken) }) },
  };
}

export class TestRunner {
  constructor(private readonly options: RunnerOptions) {}

  async run(spec: SessionSpec, invocation: SessionInvocation, run: RunOptions): Promise<RunResult> {
    const { podman, instanceId, stopGraceMs, logMaxBytes, warn } = this.options;
    // The daemon makes a session's work dir when it accepts the trigger; here the runner is alone.
    const workDir = this.options.workDir ?? makeTempDir('agentd-e2e-work-');
    mkdirSync(workPaths(workDir, invocation.sessionId).copy, { recursive: true, mode: 0o700 });
    const { seccompProfile } = this.options;
    const machine = runnerMachineFor({
      instanceId,
      stopGraceMs,
      workDir,
      ...(seccompProfile === undefined ? {} : { seccompProfile }),
    }).provide({
      actors: runnerActors(podman, {
        logFile: () => run.logFile,
        logMaxBytes,
        line: (_, line) => run.onEvent({ type: 'output', line: line.text, stream: line.stream }),
      }),
      actions: {
        announcePhase: (_, { phase }) => run.onEvent({ type: 'phase', phase }),
        announceContainer: (_, { container }) => run.onEvent({ type: 'container', name: container }),
        warn: (_, { message, error }) => warn?.(message, error),
      },
    });
    const actor = createActor(machine, { input: { session: wrap(spec, invocation) } });
    const cancel = () => actor.send({ type: 'cancel' });
    actor.start();
    if (run.signal.aborted) cancel();
    run.signal.addEventListener('abort', cancel);
    try {
      return await toPromise(actor);
    } finally {
      run.signal.removeEventListener('abort', cancel);
    }
  }
}
