/**
 * SIGHUP is taken for the daemon's whole life (src/daemon/hangup.ts). Its default action ends the
 * process, and the daemon took it only while its machine ran: measured with a real daemon, a SIGHUP
 * 600 ms after `agentd start` (after the preflight, during the podman calls before the socket opens)
 * and one during the stop (a notification in flight) each killed it (exit by SIGHUP, no daemon.stopped).
 * test/e2e/reload-signals.test.ts runs both against the built daemon.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { takeHangups } from '../../src/daemon/hangup.js';

function fakeLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = { info: (_: unknown, msg: string) => lines.push(msg) } as unknown as Logger;
  return { log, lines };
}

describe('SIGHUP for the life of the daemon', () => {
  it('is taken from the start: a burst while starting is one reload once the daemon takes reloads', () => {
    const signals = new EventEmitter();
    const { log, lines } = fakeLog();
    const hangups = takeHangups(log, signals);
    expect(signals.listenerCount('SIGHUP')).toBe(1);
    for (let i = 0; i < 100; i++) signals.emit('SIGHUP');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/while starting/);
    let reloads = 0;
    hangups.reloadWith(() => reloads++);
    expect(reloads).toBe(1);
    signals.emit('SIGHUP');
    expect(reloads).toBe(2);
    hangups.release();
  });

  it('without one while starting, no reload is made when the daemon takes reloads', () => {
    const signals = new EventEmitter();
    const hangups = takeHangups(fakeLog().log, signals);
    let reloads = 0;
    hangups.reloadWith(() => reloads++);
    expect(reloads).toBe(0);
    hangups.release();
  });

  it('is still taken while the daemon stops: no reload, told once for a burst', () => {
    const signals = new EventEmitter();
    const { log, lines } = fakeLog();
    const hangups = takeHangups(log, signals);
    let reloads = 0;
    hangups.reloadWith(() => reloads++);
    hangups.stopping();
    for (let i = 0; i < 100; i++) signals.emit('SIGHUP');
    expect(reloads).toBe(0);
    expect(lines).toEqual(['received SIGHUP while stopping: the configuration is not re-read']);
    expect(signals.listenerCount('SIGHUP')).toBe(1);
    hangups.release();
    expect(signals.listenerCount('SIGHUP')).toBe(0);
  });

  it('takes the process signal by default, and lets it go on release', () => {
    const before = process.listenerCount('SIGHUP');
    const hangups = takeHangups(fakeLog().log);
    expect(process.listenerCount('SIGHUP')).toBe(before + 1);
    hangups.release();
    expect(process.listenerCount('SIGHUP')).toBe(before);
  });
});
