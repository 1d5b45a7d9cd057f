/**
 * The YAML's tokens (the yaml library's syntax tree: some 70 bytes of memory a byte of text, 300 MB for
 * a 4 MiB file) are garbage once the document is composed, and the loader says so (LoadOptions.collect):
 * a reload's thread collects its heap there (reload-worker.ts, collectGarbage). V8 collected it only once
 * it had grown as much again, so the tokens stayed under everything made after them: a daemon reloading
 * a 4 MiB file of 52,000 one-line agents peaked at 848 MB of RSS, 653 MB with the collection. Heap sizes
 * as ratios of what the tokens of the same text take in the same run, never absolute bounds.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { LineCounter } from 'yaml';
import { ConfigError, loadConfig, MAX_AGENTS } from '../../src/config/load.js';
import { yamlTokens } from '../../src/config/yaml-depth.js';
import { collectGarbage } from '../../src/daemon/young-generation.js';
import { makeTempDir } from '../helpers/resources.js';

/** The heap in use once its garbage is collected. */
function liveHeap(): number {
  collectGarbage();
  return getHeapStatistics().used_heap_size;
}

function configText(dir: string, agents: number, extra = ''): string {
  let text = `daemon:\n  socket: ${dir}/agentd.sock\n  state_dir: ${dir}/state\nagents:\n`;
  for (let i = 0; i < agents; i++)
    text += `  - {name: a${i}, image: localhost/x:1, command: [echo, a${i}]${extra}}\n`;
  return text;
}

describe('checking a configuration file', () => {
  it('calls collect once, when the tokens are no longer held: what lives then is a fraction of them', async () => {
    const dir = makeTempDir('agentd-unit-config-collect-');
    const file = join(dir, 'agentd.yaml');
    // As many agents as a file may hold (MAX_AGENTS).
    const text = configText(dir, MAX_AGENTS);
    writeFileSync(file, text);

    // What the tokens of this text take, held.
    const before = liveHeap();
    let held: unknown = yamlTokens(text, new LineCounter());
    const tokens = liveHeap() - before;
    expect(held).toHaveProperty('tokens');
    held = undefined;
    expect(tokens).toBeGreaterThan(text.length * 10);

    const atCollect: number[] = [];
    const base = liveHeap();
    const settings = await loadConfig({ flag: file, collect: () => atCollect.push(liveHeap() - base) });
    expect(settings.agents).toHaveLength(MAX_AGENTS);
    expect(atCollect).toHaveLength(1);
    // The composed document (and the text) only: with the tokens still held it is more than they are.
    expect(atCollect[0]).toBeLessThan(tokens * 0.6);
  });

  it('calls collect for a file whose problems are found after the YAML is read, and they keep their lines', async () => {
    const dir = makeTempDir('agentd-unit-config-collect-');
    const file = join(dir, 'agentd.yaml');
    writeFileSync(file, configText(dir, 3, ', colour: red'));
    let calls = 0;
    const error = await loadConfig({ flag: file, collect: () => calls++ }).catch((e: unknown) => e);
    expect(calls).toBe(1);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems[0]).toMatchObject({ path: 'agents[0].colour', line: 5 });
  });

  it('does not call it for a file nested too deep, refused before a document is made', async () => {
    const dir = makeTempDir('agentd-unit-config-collect-');
    const file = join(dir, 'agentd.yaml');
    writeFileSync(file, `agents: ${'['.repeat(200)}\n`);
    let calls = 0;
    await expect(loadConfig({ flag: file, collect: () => calls++ })).rejects.toThrow(/nests deeper/);
    expect(calls).toBe(0);
  });
});
