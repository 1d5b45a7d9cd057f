import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { daemonMachine } from '../../src/machines/daemon.machine.js';
import { deliveryMachine } from '../../src/machines/delivery.machine.js';
import { runnerMachine } from '../../src/machines/runner.machine.js';
import { scheduleMachine } from '../../src/machines/schedule.machine.js';
import { sessionMachine } from '../../src/machines/session.machine.js';
import { REGENERATE, renderStatechart, statechartPages } from '../../src/tools/statecharts.js';

const DOCS = join(import.meta.dirname, '..', '..', 'docs', 'statecharts');

function committed(file: string): string | undefined {
  try {
    return readFileSync(join(DOCS, file), 'utf8');
  } catch {
    return undefined;
  }
}

function allStates(node: AnyStateNode): AnyStateNode[] {
  return Object.values(node.states as Record<string, AnyStateNode>).flatMap((c) => [c, ...allStates(c)]);
}

describe('docs/statecharts', () => {
  it.each(statechartPages().map((page) => [page.file, page.content]))(
    '%s matches what the machines generate',
    (file, content) => {
      const current = committed(file);
      // A plain equality check, so the failure says what to do instead of printing two long pages.
      if (current !== content) {
        expect.fail(
          `docs/statecharts/${file} is ${current === undefined ? 'missing' : 'out of date'}: ` +
            `the machines changed. Run \`${REGENERATE}\` and commit the result.`,
        );
      }
    },
  );

  it.each([
    ['daemon', daemonMachine],
    ['session', sessionMachine],
    ['runner', runnerMachine],
    ['schedule', scheduleMachine],
    ['delivery', deliveryMachine],
  ] as [string, AnyStateMachine][])('every state of the %s machine has a description', (_, machine) => {
    const missing = [machine.root, ...allStates(machine.root)].filter((s) => !s.description).map((s) => s.id);
    expect(missing, 'states without a description (the generated docs show them as —)').toEqual([]);
  });

  it('renders nested states, initial and final markers, guards and invoke outcomes', () => {
    const page = renderStatechart(daemonMachine, 'Daemon machine');
    expect(page).toContain('```mermaid\nstateDiagram-v2\n  [*] --> reconciling\n');
    expect(page).toMatch(/ {2}state shutdown \{\n {4}\[\*\] --> draining\n/);
    expect(page).toContain(
      '    draining --> stopped: always [and(noSessionsRunning, not(hostReconciling))]\n',
    );
    expect(page).toContain('    stopped --> [*]\n');
    expect(page).toContain('  failed --> [*]\n');
    expect(page).toContain('  ready --> ready: trigger [sessionIdRecorded]\n');
    // Mermaid ends a label at a colon, so the diagram spells it as an entity; the tables do not.
    expect(page).toContain('  reconciling --> opening: done#58; reconcile\n');
    expect(page).toContain('  opening --> failed: error#58; openSocket\n');
    expect(page).toContain('| `shutdown.draining` | atomic | Queued sessions are dropped');
    expect(page).toContain('| `reconciling` | compound |');
    expect(page).toContain('| `reconciling.stopping` | atomic |');
    expect(page).toMatch(/\| `trigger` \| `ready` \| — \| — \| `checkTrigger` \|/);
    expect(page).toMatch(/\| `trigger.valid` \| `ready` \| — \| — \| `recordAccepted` \|/);
    expect(page).toMatch(
      /\| `trigger.recorded` \| `ready` \| — \| — \| `queueSession`, `rememberKey`, `startQueuedSessions`, `answerAccepted`/,
    );
    // A transition shared by several states is one row naming them all.
    expect(page).toMatch(/\| `shutdown` \| `ready`, `degraded` \| `shutdown` \| — \| — \|/);
    expect(page).toMatch(
      /\| `shutdown` \| `ready`, `degraded` \| `shutdown` \| `forcedShutdown` \| `raiseShutdown` \|/,
    );
    expect(page).toMatch(/\| `shutdown` \| `shutdown.draining` \| — \| `gracefulShutdown` \| — \|/);
    expect(page).toMatch(/\| `shutdown` \| `opening` \| `shutdown` \| — \| `leaveRecovered` \|/);
  });

  it('names explicit invoke ids and static action parameters', () => {
    const page = renderStatechart(sessionMachine, 'Session machine');
    expect(page).toContain('| `run` | compound |');
    expect(page).toContain('`runner` (id `runner`)');
    expect(page).toContain('`announcePhase({"phase":"resolving"})`');
    expect(page).toContain('  run --> report: error#58; runner\n');
  });

  it('shows the runner: every phase a state, the deadline a delayed transition, teardown with retries', () => {
    const page = renderStatechart(runnerMachine, 'Runner machine');
    expect(page).toContain('live --> live: after deadline [hasDeadline]');
    expect(page).toContain('| `tearingDown` | parallel |');
    expect(page).toContain('after teardownRetry');
    expect(page).toContain('| `cancel` |');
  });

  it('is deterministic', () => {
    expect(renderStatechart(daemonMachine, 'x')).toBe(renderStatechart(daemonMachine, 'x'));
    expect(statechartPages().map((p) => p.file)).toEqual([
      'daemon.md',
      'session.md',
      'runner.md',
      'schedule.md',
      'host.md',
      'delivery.md',
      'README.md',
    ]);
  });
});
