import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { NotifyOutbox } from '../../src/adapters/notify-outbox.js';
import { Notifier } from '../../src/daemon/notifier.js';

/** Files whose open fails with this errno (a disk error, too many open files), as the system would. */
const failing = new Map<string, string>();

vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs')>();
  return {
    ...actual,
    openSync: (...args: Parameters<typeof actual.openSync>) => {
      const code = failing.get(String(args[0]));
      if (code !== undefined)
        throw Object.assign(new Error(`${code}: failed, open '${String(args[0])}'`), { code });
      return actual.openSync(...args);
    },
  };
});

const ENTRY = (session: string) =>
  `${JSON.stringify({
    version: 1,
    session,
    targets: [{ key: 'a'.repeat(64), delivery: '6f1c1c0e-4b7a-4d57-9a4f-0d1e2f3a4b5c', made: 1 }],
  })}\n`;

describe('notification outbox at a start', () => {
  let stateDir: string;
  beforeEach(() => {
    stateDir = mkdtempSync(join(tmpdir(), 'agentd-outbox-'));
  });
  afterEach(() => {
    failing.clear();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('leaves an entry that fails to be read with an errno (EIO, EMFILE) in place, told once; removes a corrupt one', () => {
    const box = new NotifyOutbox(stateDir, () => {});
    const file = (session: string) => join(box.dir, `${session}.json`);
    const [good, eio, emfile, corrupt] = [
      '00000000000000a1',
      '00000000000000a2',
      '00000000000000a3',
      '00000000000000a4',
    ];
    for (const session of [good, eio, emfile]) writeFileSync(file(session), ENTRY(session));
    writeFileSync(file(corrupt), '{"version":1,');
    failing.set(file(eio), 'EIO');
    failing.set(file(emfile), 'EMFILE');
    const { entries, unreadable, unread } = box.load();
    expect(entries.map((e) => e.session)).toEqual([good]);
    expect(unreadable).toEqual([expect.objectContaining({ file: file(corrupt), removed: true })]);
    expect(unread).toEqual({
      count: 2,
      files: [file(eio), file(emfile)],
      reason: `EIO: failed, open '${file(eio)}'`,
    });
    // Left for a next start, which reads them once the system lets it.
    expect(readdirSync(box.dir).sort()).toEqual([`${good}.json`, `${eio}.json`, `${emfile}.json`]);
    failing.clear();
    expect(box.load().entries.map((e) => e.session)).toEqual([good, eio, emfile]);
    expect(existsSync(file(corrupt))).toBe(false);
  });

  it('the notifier says so in one warning: left in place, read again at the next start', () => {
    const box = new NotifyOutbox(stateDir, () => {});
    const sessions = ['00000000000000b1', '00000000000000b2', '00000000000000b3'];
    for (const session of sessions) {
      const path = join(box.dir, `${session}.json`);
      writeFileSync(path, ENTRY(session));
      failing.set(path, 'EMFILE');
    }
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const notifier = new Notifier({
      targets: () => [],
      env: {},
      log,
      metrics: { notification: () => {}, notificationAttempt: () => {} },
      version: '9.9.9',
      outbox: box,
    });
    notifier.resume(() => undefined);
    const told = lines.filter((l) => l.event === 'notify.unreadable');
    expect(told).toEqual([
      expect.objectContaining({ level: 40, left: 3, files: sessions.map((s) => join(box.dir, `${s}.json`)) }),
    ]);
    expect(told[0]?.msg).toContain(
      "3 files of the notification outbox could not be read now (EMFILE: failed, open '",
    );
    expect(told[0]?.msg).toContain(
      "left in place, not sent by this daemon; the next start reads them again (check the filesystem and the daemon's open file limit)",
    );
    expect(readdirSync(box.dir)).toHaveLength(3);
  });
});
