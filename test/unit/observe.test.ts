import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { SessionJournal } from '../../src/daemon/journal.js';
import type { MetricsRecorder } from '../../src/daemon/metrics-recorder.js';
import type { Notifier } from '../../src/daemon/notifier.js';
import { observeDaemon } from '../../src/daemon/observe.js';
import type { DaemonActor } from '../../src/daemon/port.js';
import type { SessionRecord } from '../../src/sessions/records.js';
import { SessionBus } from '../../src/sessions/session-bus.js';

describe('observeDaemon', () => {
  it('notifies an outcome even when the metrics throw on it', () => {
    const bus = new SessionBus();
    const notified: string[] = [];
    const record = { id: '0123456789abcdef', agent: 'demo' } as SessionRecord;
    observeDaemon({
      // Only what observeDaemon touches: the bus's followers and the machine's answers.
      actor: { on: () => ({ unsubscribe() {} }) } as unknown as DaemonActor,
      journal: { followAll: (listener) => bus.followAll(listener) } as Pick<
        SessionJournal,
        'followAll'
      > as SessionJournal,
      metrics: {
        session() {
          throw new Error('a fault in the metrics');
        },
      } as unknown as MetricsRecorder,
      notifier: { notify: (r: SessionRecord) => notified.push(r.id) } as unknown as Notifier,
      log: pino({ enabled: false }),
    });
    bus.publish({ type: 'outcome', sessionId: record.id, record });
    expect(notified).toEqual([record.id]);
  });
});
