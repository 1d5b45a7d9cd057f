import { join } from 'node:path';
import type { PodmanPort } from '../../src/adapters/podman.js';
import { isSkipped, readSessionLog } from '../../src/runner/session-log.js';
import type { Phase, RunResult, SessionInvocation, SessionSpec } from '../../src/sessions/types.js';
import { randomSessionId } from './ids.js';
import { TEST_IMAGE } from './podman.js';
import { makeTempDir, track } from './resources.js';
import { type RunEvent, TestRunner } from './runner.js';

/** One session run by the runner machine against real Podman, as a test sees it. */
export interface RunSession {
  result: RunResult;
  events: { at: number; event: RunEvent }[];
  lines: string[];
  phases: Phase[];
  container: string | undefined;
  log: () => string;
  elapsedMs: number;
}

export interface RunSessionOptions {
  runner: TestRunner;
  spec?: Partial<SessionSpec>;
  invocation: Partial<SessionInvocation> & { repoUrl: string };
  signal?: AbortSignal;
  onEvent?: (event: RunEvent) => void;
}

/** A runner of a test instance; warnings are collected into `warnings`. */
export function testRunner(
  podman: PodmanPort,
  instanceId: string,
  warnings: string[],
  stopGraceMs = 1000,
  seccompProfile?: string,
): TestRunner {
  return new TestRunner({
    podman,
    instanceId,
    stopGraceMs,
    ...(seccompProfile === undefined ? {} : { seccompProfile }),
    logMaxBytes: 1_000_000,
    warn: (message, error) => warnings.push(`${message}: ${String(error)}`),
  });
}

/** Runs one session of agent `e2e-agent` (test image, host network, `true`, unless spec says otherwise). */
export async function runSession(options: RunSessionOptions): Promise<RunSession> {
  const spec: SessionSpec = {
    agent: 'e2e-agent',
    image: TEST_IMAGE,
    command: ['true'],
    credentials: [],
    env: {},
    network: 'host',
    ...options.spec,
  };
  const invocation: SessionInvocation = { sessionId: randomSessionId(), ...options.invocation };
  const logFile = join(makeTempDir('agentd-e2e-log-'), 'session.log');
  const events: RunSession['events'] = [];
  let container: string | undefined;
  const started = performance.now();
  const result = await options.runner.run(spec, invocation, {
    signal: options.signal ?? new AbortController().signal,
    logFile,
    onEvent: (event) => {
      events.push({ at: performance.now(), event });
      if (event.type === 'container') container = track.container(event.name);
      options.onEvent?.(event);
    },
  });
  return {
    result,
    events,
    lines: events.flatMap(({ event }) => (event.type === 'output' ? [event.line] : [])),
    phases: events.flatMap(({ event }) => (event.type === 'phase' ? [event.phase] : [])),
    container,
    // The text of each line in the log (the file also holds each line's seq, time and stream).
    log: () =>
      readSessionLog(logFile)
        .map((entry) => (isSkipped(entry) ? '' : `${entry.text}\n`))
        .join(''),
    elapsedMs: performance.now() - started,
  };
}
