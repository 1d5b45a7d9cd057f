/**
 * `podman logs` puts the container's stderr and podman's own messages on one stream: a message podman
 * prints when it fails ("Error: ...") must not become a line of the session's output, and a container's
 * own "Error: ..." lines must. An attached container's stream (`run`, `start --attach`) exits with the
 * container's own code, so only podman's own failure code (125) makes them podman's. Through the real
 * PodmanClient, with a stand-in `podman` script.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HeldErrorLines, type PodmanClient } from '../../src/adapters/podman.js';
import { standInPodman } from '../helpers/stand-in-podman.js';

const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-logs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A `podman` whose `logs` runs `script` (sh), then exits with `code`. */
function podmanWith(script: string, code: number): PodmanClient {
  return standInPodman(dir, () => `${script}\nexit ${code}\n`).client;
}

async function follow(client: PodmanClient): Promise<{ lines: string[]; exitCode: number }> {
  const lines: string[] = [];
  const run = client.followLogs('c', undefined, (text, end, stream) => {
    lines.push(`${stream}${end ? '' : '+'} ${text}`);
  });
  return { exitCode: await run.exitCode, lines };
}

describe("podman's own message at the end of a log stream", () => {
  it('is not the session’s output when podman fails', async () => {
    const client = podmanWith(
      [
        'echo "hello"',
        'echo "warning: from the agent" >&2',
        'sleep 0.05',
        'echo "Error: no container with name or ID \\"c\\" found: no such container" >&2',
      ].join('\n'),
      125,
    );
    const { lines, exitCode } = await follow(client);
    expect(exitCode).toBe(125);
    expect(lines).toEqual(['stdout hello', 'stderr warning: from the agent']);
  });

  it('is the container’s own when podman ends well, or when output follows it', async () => {
    const ended = await follow(podmanWith('echo out\nsleep 0.05\necho "Error: the agent failed" >&2', 0));
    expect(ended.lines).toEqual(['stdout out', 'stderr Error: the agent failed']);
    const followed = await follow(
      podmanWith(
        [
          'echo out',
          'sleep 0.05',
          'echo "Error: first" >&2',
          'echo "Error: second" >&2',
          'sleep 0.05',
          'echo "more" >&2',
        ].join('\n'),
        1,
      ),
    );
    expect(followed.lines).toEqual([
      'stdout out',
      'stderr Error: first',
      'stderr Error: second',
      'stderr more',
    ]);
  });

  it('before the container printed, stays in the output as before (podman’s start-up messages)', async () => {
    const { lines } = await follow(podmanWith('echo "Error: cannot start" >&2', 125));
    expect(lines).toEqual(['stderr Error: cannot start']);
  });
});

describe('an attached container’s last "Error: ..." lines', () => {
  async function attached(client: PodmanClient): Promise<{ lines: string[]; exitCode: number }> {
    const lines: string[] = [];
    const run = client.startAttached('c', (text, end, stream) => {
      lines.push(`${stream}${end ? '' : '+'} ${text}`);
    });
    return { exitCode: await run.exitCode, lines };
  }

  it('stay in the output when the container fails with its own exit code', async () => {
    // `podman start --attach` exits with the container's code: 1 is the agent failing, not podman.
    const { lines, exitCode } = await attached(
      podmanWith('echo working\nsleep 0.05\necho "Error: giving up" >&2', 1),
    );
    expect(exitCode).toBe(1);
    expect(lines).toEqual(['stdout working', 'stderr Error: giving up']);
  });

  it('handed on after the hold while the consumer throws: each line is still offered, and nothing reaches the process', async () => {
    // The held lines go on from a timer (the container printed "Error: ..." and went quiet for the hold's
    // 1 s): a consumer that throws there was an uncaught exception, which ended the daemon.
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.prependListener('uncaughtException', onUncaught);
    try {
      const lines: string[] = [];
      const run = podmanWith(
        'echo working\nsleep 0.05\necho "Error: first" >&2\necho "Error: second" >&2\nsleep 1.3\necho more >&2',
        1,
      ).startAttached('c', (text, end, stream) => {
        lines.push(`${stream}${end ? '' : '+'} ${text}`);
        if (stream === 'stderr') throw new Error('the consumer failed');
      });
      expect(await run.exitCode).toBe(1);
      expect(uncaught).toEqual([]);
      expect(lines).toEqual(['stdout working', 'stderr Error: first', 'stderr Error: second', 'stderr more']);
    } finally {
      process.removeListener('uncaughtException', onUncaught);
    }
  });

  it('are podman’s, and left out, when podman fails with its own code (125)', async () => {
    const { lines, exitCode } = await attached(
      podmanWith('echo working\nsleep 0.05\necho "Error: attaching to container c: EOF" >&2', 125),
    );
    expect(exitCode).toBe(125);
    expect(lines).toEqual(['stdout working']);
  });
});

describe('HeldErrorLines', () => {
  it('holds a long message to its end, and no more than its bound', () => {
    const out: string[] = [];
    const held = new HeldErrorLines((text, end) => out.push(`${end ? '' : '+'}${text}`));
    expect(held.offer('Error: a long', false)).toBe(true);
    expect(held.offer(' message', true)).toBe(true);
    expect(out).toEqual([]);
    held.drop();
    // A flood of lines that look like messages is handed on once past the bound, in order.
    const many = Array.from({ length: HeldErrorLines.MAX_LINES + 1 }, (_, i) => `Error: ${i}`);
    const taken = many.map((line) => held.offer(line, true));
    expect(taken.at(-1)).toBe(false);
    expect(out).toEqual(many.slice(0, -1));
    // A line that does not start like a message is handed on at once.
    expect(held.offer('plain', true)).toBe(false);
  });

  it('hands on what it holds once the container has been quiet for a while', async () => {
    const out: string[] = [];
    const held = new HeldErrorLines((text) => out.push(text), 20);
    expect(held.offer('Error: from the agent, then silence', true)).toBe(true);
    expect(out).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(out).toEqual(['Error: from the agent, then silence']);
  });
});
