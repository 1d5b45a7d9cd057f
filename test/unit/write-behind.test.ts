import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SealedRecords } from '../../src/adapters/sealed-records.js';
import { WriteBehind } from '../../src/adapters/write-behind.js';
import { makeTempDir } from '../helpers/resources.js';

const ID = '0123456789abcdef';

describe('write-behind', () => {
  it('runs the tasks of a key in order, one at a time, and only the newest of those that wait', async () => {
    const writes = new WriteBehind<string>();
    const ran: string[] = [];
    let running = 0;
    let most = 0;
    const task = (name: string) => async () => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      ran.push(name);
      running--;
    };
    for (const name of ['a1', 'a2', 'a3']) writes.schedule('a', task(name));
    writes.schedule('b', task('b1'));
    // Nothing runs in the turn that scheduled it: the turn's updates are written once.
    expect(ran).toEqual([]);
    expect(running).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 2));
    // a4 waits behind the running a3, a5 replaces it.
    writes.schedule('a', task('a4'));
    writes.schedule('a', task('a5'));
    await writes.settledAll();
    expect(ran.filter((n) => n.startsWith('a'))).toEqual(['a3', 'a5']);
    expect(ran).toContain('b1');
    expect(most).toBe(2);
    // The queue is gone once empty: a later task starts a new one and runs.
    writes.schedule('a', task('a6'));
    await writes.settled('a');
    expect(ran.at(-1)).toBe('a6');
  });

  it('keeps a queue going after a task that throws', async () => {
    const writes = new WriteBehind<string>();
    const ran: string[] = [];
    writes.schedule('a', async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      throw new Error('disk gone');
    });
    await new Promise((resolve) => setTimeout(resolve, 1));
    writes.schedule('a', async () => {
      ran.push('after');
    });
    await writes.settled('a');
    expect(ran).toEqual(['after']);
  });
});

describe('session.json of an open record, written in the background', () => {
  it('writes the newest of many changes, leaves no temp file, and the seal lands last', async () => {
    const dir = makeTempDir('agentd-unit-writebehind-');
    const records = new SealedRecords(join(dir, 'records'));
    for (let i = 0; i < 50; i++) records.write('demo', ID, { id: ID, change: i });
    await records.settled();
    const recordDir = records.dirOf('demo', ID);
    expect(JSON.parse(readFileSync(join(recordDir, 'session.json'), 'utf8'))).toEqual({ id: ID, change: 49 });
    expect(readdirSync(recordDir)).toEqual(['session.json']);
    // A change still on its way when the session ends must not land over (or in) the sealed record.
    records.write('demo', ID, { id: ID, change: 'late' });
    await records.seal({
      agent: 'demo',
      sessionId: ID,
      archiveLimit: 1 << 20,
      json: () => ({ id: ID, sealed: true }),
    });
    records.write('demo', ID, { id: ID, change: 'after the seal' });
    await records.settled();
    expect(JSON.parse(readFileSync(join(recordDir, 'session.json'), 'utf8'))).toEqual({
      id: ID,
      sealed: true,
    });
    expect(readdirSync(recordDir).sort()).toEqual(['out', 'session.json']);
  });

  it('drops a change made while the seal runs, and a second seal gets the result of the first', async () => {
    const dir = makeTempDir('agentd-unit-writebehind-');
    const records = new SealedRecords(join(dir, 'records'));
    records.write('demo', ID, { id: ID, change: 1 });
    const sealing = records.seal({
      agent: 'demo',
      sessionId: ID,
      archiveLimit: 1 << 20,
      json: () => ({ id: ID, sealed: 1 }),
    });
    const again = records.seal({
      agent: 'demo',
      sessionId: ID,
      archiveLimit: 1 << 20,
      json: () => ({ id: ID, sealed: 2 }),
    });
    for (let i = 0; i < 20; i++) {
      records.write('demo', ID, { id: ID, change: `during ${i}` });
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await again).toEqual(await sealing);
    await records.settled();
    const recordDir = records.dirOf('demo', ID);
    expect(JSON.parse(readFileSync(join(recordDir, 'session.json'), 'utf8'))).toEqual({ id: ID, sealed: 1 });
    expect(readdirSync(recordDir).sort()).toEqual(['out', 'session.json']);
  });

  it('leaves out of the sealed record a temp file that a crash left from a session.json write', async () => {
    const dir = makeTempDir('agentd-unit-writebehind-');
    const records = new SealedRecords(join(dir, 'records'));
    records.write('demo', ID, { id: ID });
    await records.settled();
    const recordDir = records.dirOf('demo', ID);
    writeFileSync(join(recordDir, 'session.json.4242.0badf00d.tmp'), '{"id":');
    await records.seal({ agent: 'demo', sessionId: ID, archiveLimit: 1 << 20, json: () => ({ id: ID }) });
    expect(readdirSync(recordDir).sort()).toEqual(['out', 'session.json']);
  });

  it('tells the caller of a write that failed, naming what it could not write', async () => {
    const dir = makeTempDir('agentd-unit-writebehind-');
    const records = new SealedRecords(join(dir, 'records'));
    // A file where the agent's directory belongs: the record's directory cannot be made.
    writeFileSync(join(dir, 'records', 'demo'), 'in the way');
    const errors: Error[] = [];
    records.write('demo', ID, { id: ID }, (error) => errors.push(error));
    await records.settled();
    expect(errors).toHaveLength(1);
    expect(errors[0]?.message).toContain(`session ${ID}`);
    expect(errors[0]?.message).toContain(join(dir, 'records', 'demo'));
  });
});
