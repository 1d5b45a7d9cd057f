/**
 * The temp files of the state dir's atomic writes (a session's record is written some 19 times): their
 * names are unique, recognised as leftovers by TEMP_JSON_FILE, never left behind, and made without a
 * call into the CSPRNG at every write (a cold randomBytes cost about 90 µs of CPU, some 1.5 ms of the
 * daemon's CPU a session): one random salt per process, then a count.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

const draws = vi.hoisted(() => ({ count: 0, opened: [] as string[] }));
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  const randomBytes = ((size: number) => {
    draws.count += 1;
    return actual.randomBytes(size);
  }) as typeof actual.randomBytes;
  return { ...actual, default: { ...actual, randomBytes }, randomBytes };
});

vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  const open = ((path: string, ...rest: unknown[]) => {
    draws.opened.push(String(path));
    return (actual.open as (...args: unknown[]) => unknown)(path, ...rest);
  }) as typeof actual.open;
  return { ...actual, default: { ...actual, open }, open };
});

const { TEMP_JSON_FILE, writeFileAtomic, writeFileAtomicAsync } = await import(
  '../../src/adapters/state-files.js'
);

const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-temp-names-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('temp files of atomic writes', () => {
  it('draw no random bytes per write, and leave nothing but the files written', async () => {
    writeFileAtomic(join(dir, 'first.json'), '{}', { operation: 'test' });
    const before = draws.count;
    for (let i = 0; i < 50; i++) {
      writeFileAtomic(join(dir, `s${i % 5}.json`), `{"n":${i}}`, { operation: 'test' });
      await writeFileAtomicAsync(join(dir, `a${i % 5}.json`), `{"n":${i}}`, { operation: 'test' });
    }
    expect(draws.count - before).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(
      ['a0', 'a1', 'a2', 'a3', 'a4', 'first', 's0', 's1', 's2', 's3', 's4'].map((n) => `${n}.json`),
    );
  });

  it('are unique within the process and recognised as leftovers by TEMP_JSON_FILE', async () => {
    draws.opened.length = 0;
    for (let i = 0; i < 20; i++)
      await writeFileAtomicAsync(join(dir, 'same.json'), '{}', { operation: 'test' });
    const opened = draws.opened.filter((path) => path.includes('same.json'));
    expect(new Set(opened).size).toBe(20);
    for (const path of opened) {
      expect(path.startsWith(join(dir, `same.json.${process.pid}.`))).toBe(true);
      expect(TEMP_JSON_FILE.test(path)).toBe(true);
    }
  });
});
