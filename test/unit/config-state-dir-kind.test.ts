/**
 * A daemon.state_dir or records_dir that exists as a file (or lies under one) passed validate and a
 * reload, and the start then failed on it: the configuration check names the key now.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfigText, problemsOf } from '../helpers/config-problems.js';

const config = (daemon: string) =>
  `daemon:\n${daemon}agents:\n  - name: demo\n    image: localhost/x\n    command: ["run"]\n`;

describe("the daemon's directories", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'agentd-config-dirs-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('are refused when they exist as a file or lie under one', () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    for (const [daemon, path, said] of [
      [`  state_dir: ${file}\n`, 'daemon.state_dir', 'exists and is not a directory'],
      [`  state_dir: ${join(file, 'state')}\n`, 'daemon.state_dir', 'lies under a file'],
      [
        `  state_dir: ${dir}\n  records_dir: ${file}\n`,
        'daemon.records_dir',
        'exists and is not a directory',
      ],
    ] as const) {
      const error = problemsOf(config(daemon));
      expect(error.problems, daemon).toHaveLength(1);
      expect(error.problems[0]).toMatchObject({ path });
      expect(error.problems[0]?.message).toContain(said);
      expect(error.problems[0]?.message).toContain('point it at a directory');
    }
  });

  it('are accepted when they are directories or do not exist yet', () => {
    mkdirSync(join(dir, 'records'));
    for (const daemon of [
      `  state_dir: ${dir}\n`,
      `  state_dir: ${join(dir, 'not-yet')}\n`,
      `  state_dir: ${dir}\n  records_dir: ${join(dir, 'records')}\n`,
      `  state_dir: ${dir}\n  records_dir: ${join(dir, 'later', 'records')}\n`,
    ]) {
      expect(parseConfigText(config(daemon)).daemon.stateDir).toContain(dir);
    }
  });
});
