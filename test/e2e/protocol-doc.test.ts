/**
 * docs/protocol.md cannot drift: every exchange in it (a code block of `>` request and `<` reply lines)
 * is replayed, in the order of the document, against a live daemon running examples/agentd.yaml, and
 * each reply the daemon sends must be the one the document shows. Values that differ from run to run
 * (times, pids, the instance id, durations) must have the documented type; session ids are matched
 * consistently (a documented id stands for the same live id everywhere); the git server's URL, the
 * socket and configuration paths and commit hashes are the document's. A block may be left out only
 * with `<!-- not replayed: why -->` right before it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { launchDaemon, leftoversOfDaemons, prepareDaemon, type TestDaemon } from '../helpers/daemon.js';
import { type Gate, startGate } from '../helpers/gate.js';
import { type GitServer, startGitServer } from '../helpers/git-server.js';
import { cleanupAll } from '../helpers/resources.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DOC = readFileSync(join(ROOT, 'docs', 'protocol.md'), 'utf8');

/** What the document calls things that differ in each run. */
const DOC_GIT_URL = 'git://127.0.0.1:9418/demo.git';
const DOC_STALLED_URL = 'git://127.0.0.1:9419/stalled.git';
const DOC_SOCKET = '/run/agentd/agentd.sock';
const DOC_CONFIG = '/etc/agentd/agentd.yaml';
const DOC_STATE_DIR = '/var/lib/agentd';
const DOC_COMMIT = 'c0ffee1e5b1d8a4c2f3b7e9d6a0c1b2d3e4f5a6b';
/** Keys whose value differs in each run: only its type is checked. */
const VOLATILE = new Set([
  'pid',
  'instanceId',
  'version',
  'uptimeMs',
  'elapsedMs',
  'waitingMs',
  'durationMs',
  'acceptedAt',
  'startedAt',
  'finishedAt',
  'at',
  'container',
  // The test image as this machine built it.
  'imageId',
  'imageDigest',
  'timings',
  'ms',
  // When the daemon read a line of output.
  'time',
]);
const SESSION_ID = /\b[0-9a-f]{16}\b/g;

interface Step {
  send: string;
  expect: string[];
}
interface Block {
  line: number;
  /** `subsequence`: the documented replies come in this order, others (state updates) may come between. */
  mode: 'exact' | 'subsequence';
  steps: Step[];
}

/** The exchanges of the document, and the blocks it leaves out with their reasons. */
function exchanges(markdown: string): { blocks: Block[]; skipped: string[] } {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  const skipped: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]?.startsWith('```')) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i]?.startsWith('```'); i++) body.push(lines[i] as string);
    if (!body.some((l) => l.startsWith('> ') || l.startsWith('< '))) continue;
    let before = start - 1;
    while (before > 0 && lines[before]?.trim() === '') before--;
    const note = lines[before] ?? '';
    const notReplayed = /^<!-- not replayed: (.+) -->$/.exec(note);
    if (notReplayed) {
      skipped.push(notReplayed[1] as string);
      continue;
    }
    const steps: Step[] = [];
    for (const l of body) {
      if (l.startsWith('> ')) steps.push({ send: l.slice(2), expect: [] });
      else if (l.startsWith('< ') && steps.length > 0) steps.at(-1)?.expect.push(l.slice(2));
      else
        throw new Error(
          `docs/protocol.md line ${start + 1}: a replayed block holds only > and < lines: ${l}`,
        );
    }
    blocks.push({
      line: start + 1,
      mode: note === '<!-- replay: subsequence -->' ? 'subsequence' : 'exact',
      steps,
    });
  }
  return { blocks, skipped };
}

class Connection {
  readonly replies: string[] = [];
  /** The daemon ended the connection, and every line it sent has been read. */
  ended = false;
  private wake: (() => void) | undefined;
  constructor(private readonly socket: Socket) {
    createInterface({ input: socket })
      .on('line', (line) => {
        this.replies.push(line);
        this.wake?.();
      })
      .on('close', () => {
        this.ended = true;
        this.wake?.();
      });
    socket.on('error', () => {});
  }
  static open(path: string): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('connect', () => resolve(new Connection(socket)));
      socket.once('error', reject);
    });
  }
  write(line: string): void {
    this.socket.write(`${line}\n`);
  }
  async until(done: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done() && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 100).unref();
      });
    }
  }
  /** Ends the client's side: it sends no more requests, and still reads. */
  end(): void {
    this.socket.end();
  }
  close(): void {
    this.socket.destroy();
  }
}

let git: GitServer;
let gate: Gate;
let d: TestDaemon;
/** Live text → the document's. */
let toDoc: [string, string][] = [];
/** Documented session id → live one. */
const ids = new Map<string, string>();

beforeAll(async () => {
  [git, gate] = await Promise.all([startGitServer(), startGate()]);
  const liveUrl = await git.addRepo('demo.git', { 'README.md': '# demo\n' });
  const { stdout: commit } = await execa('git', ['log', '--format=%H', '-1'], {
    cwd: join(git.dir, 'demo.git'),
  });
  // examples/agentd.yaml as it ships, with this test's socket and state dir.
  const example = parse(readFileSync(join(ROOT, 'examples', 'agentd.yaml'), 'utf8')) as {
    daemon: Record<string, unknown>;
    agents: Record<string, unknown>[];
  };
  const files = prepareDaemon({ agents: [] });
  writeFileSync(
    files.configPath,
    stringify({
      ...example,
      daemon: { ...example.daemon, socket: files.socketPath, state_dir: files.stateDir },
    }),
  );
  d = launchDaemon(files, { env: { AGENTD_DEMO_TOKEN: 'demo-9chr' } });
  await d.ready();
  toDoc = [
    [liveUrl, DOC_GIT_URL],
    [`git://127.0.0.1:${gate.port}/stalled.git`, DOC_STALLED_URL],
    [files.socketPath, DOC_SOCKET],
    [files.configPath, DOC_CONFIG],
    [files.stateDir, DOC_STATE_DIR],
    // The full hash (records) before the short one (git log --oneline in the output).
    [commit.trim(), DOC_COMMIT],
    [commit.trim().slice(0, 7), DOC_COMMIT.slice(0, 7)],
  ];
});

afterAll(async () => {
  gate?.open();
  if (d?.running) await d.stop('SIGTERM', 60_000);
  const left = d ? await leftoversOfDaemons() : [];
  await cleanupAll();
  await Promise.allSettled([git?.stop(), gate?.close()]);
  expect(left).toEqual([]);
});

/** A request as the live daemon must get it: the document's URLs and ids replaced by the live ones. */
function live(request: string): string {
  let text = request;
  for (const [liveText, docText] of toDoc) text = text.split(docText).join(liveText);
  return text.replace(SESSION_ID, (id) => ids.get(id) ?? id);
}

/** A reply in the document's words: live URLs, paths and bound session ids replaced by the document's. */
function asDoc(reply: string): string {
  let text = reply;
  for (const [liveText, docText] of toDoc) text = text.split(liveText).join(docText);
  const back = new Map([...ids].map(([doc, liveId]) => [liveId, doc]));
  return text.replace(SESSION_ID, (id) => back.get(id) ?? id);
}

/** Where actual differs from expected, or undefined. Binds documented session ids to live ones. */
function difference(expected: unknown, actual: unknown, path: string): string | undefined {
  const key = path.split('.').at(-1) ?? '';
  if (VOLATILE.has(key)) {
    return typeof expected === typeof actual
      ? undefined
      : `${path}: a ${typeof expected}, got ${JSON.stringify(actual)}`;
  }
  if (typeof expected === 'string' && /^[0-9a-f]{16}$/.test(expected) && typeof actual === 'string') {
    // asDoc() already turned bound ids back; an unbound one binds now.
    if (expected === actual) return undefined;
    if (ids.has(expected) || [...ids.values()].includes(actual) || !/^[0-9a-f]{16}$/.test(actual)) {
      return `${path}: session ${expected}, got ${actual}`;
    }
    ids.set(expected, actual);
    return undefined;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      return `${path}: ${expected.length} items, got ${JSON.stringify(actual)}`;
    }
    for (const [i, item] of expected.entries()) {
      const found = difference(item, actual[i], `${path}[${i}]`);
      if (found) return found;
    }
    return undefined;
  }
  if (typeof expected === 'object' && expected !== null) {
    if (typeof actual !== 'object' || actual === null || Array.isArray(actual))
      return `${path}: an object, got ${JSON.stringify(actual)}`;
    const want = Object.keys(expected).sort();
    const got = Object.keys(actual).sort();
    if (want.join() !== got.join()) return `${path}: fields ${want.join(', ')}, got ${got.join(', ')}`;
    for (const k of want) {
      const found = difference(
        (expected as Record<string, unknown>)[k],
        (actual as Record<string, unknown>)[k],
        `${path}.${k}`,
      );
      if (found) return found;
    }
    return undefined;
  }
  return expected === actual
    ? undefined
    : `${path}: ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}

function matches(expected: string, actual: string): string | undefined {
  return difference(JSON.parse(expected), JSON.parse(asDoc(actual)), '$');
}

const { blocks, skipped } = exchanges(DOC);

describe('docs/protocol.md', () => {
  it('has exchanges, and leaves out only those it says why', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(15);
    expect(skipped).toEqual([
      'it needs 256 open connections',
      'it needs a full disk',
      'it needs a session that printed more than log_max_bytes',
      'it needs a daemon that went away and came back',
      'it needs a line longer than 64 KiB',
      'it needs a client that reads slower than a session prints',
      'it needs a client that stops reading for 30 s',
      'it waits 15 s',
      'it stops the daemon',
      'it needs an invalid configuration file',
      'whether the host was probed yet depends on timing',
      'it needs a daemon with hosts: configured',
    ]);
  });

  it.each(blocks.map((b) => [b.line, b] as const))(
    'the exchange at line %i happens as shown',
    async (_, block) => {
      const c = await Connection.open(d.socketPath);
      try {
        for (const [stepIndex, step] of block.steps.entries()) {
          if (block.mode === 'exact' && c.replies.length > 0) {
            // A reply that came after the previous step's sentinel: the block does not show it.
            throw new Error(
              `a reply the block does not show, before ${step.send}:\n${c.replies.map(asDoc).join('\n')}`,
            );
          }
          const from = c.replies.length;
          c.write(live(step.send));
          if (block.mode === 'exact') {
            await c.until(() => c.replies.length >= from + step.expect.length, 60_000);
            const got = c.replies.slice(from, from + step.expect.length);
            for (const [i, expected] of step.expect.entries()) {
              const actual = got[i];
              if (actual === undefined)
                throw new Error(`no reply for\n  ${expected}\ngot only:\n${got.map(asDoc).join('\n')}`);
              const found = matches(expected, actual);
              if (found)
                throw new Error(
                  `reply ${i + 1} to ${step.send}\n${found}\nexpected: ${expected}\nactual:   ${asDoc(actual)}`,
                );
            }
            // Nothing else: the block shows every reply. A `hello` sent now is answered after every
            // reply the daemon had sent by then, so the only reply after the documented ones must be its.
            // Replies that come later (of a stream, a `reload`) are caught below, when the block ends.
            const sentinel = `doc-sentinel-${block.line}-${stepIndex}`;
            c.write(JSON.stringify({ type: 'hello', id: sentinel }));
            const isSentinel = (line: string) => {
              try {
                const reply = JSON.parse(line) as { id?: unknown; type?: unknown };
                return reply.id === sentinel && reply.type === 'hello';
              } catch {
                return false;
              }
            };
            await c.until(() => c.replies.some(isSentinel), 60_000);
            const after = c.replies.slice(from + step.expect.length);
            if (after.length !== 1 || !isSentinel(after[0] as string)) {
              throw new Error(
                `replies to ${step.send} that the block does not show (then the hello ${sentinel}, if it came):\n${after.map(asDoc).join('\n')}`,
              );
            }
            c.replies.splice(from);
          } else {
            let next = 0;
            let seen = from;
            await c.until(() => {
              for (; seen < c.replies.length && next < step.expect.length; seen++) {
                if (!matchesQuietly(step.expect[next] as string, c.replies[seen] as string)) continue;
                next++;
              }
              return next === step.expect.length;
            }, 60_000);
            if (next < step.expect.length) {
              throw new Error(
                `no reply like\n  ${step.expect[next]}\namong:\n${c.replies.slice(from).map(asDoc).join('\n')}`,
              );
            }
            c.replies.splice(from);
          }
        }
        if (block.mode === 'exact') {
          // Nor later: a client that ends its side gets every reply it is still owed (a follow to its
          // outcome, a `wait`'s, a `reload`'s), then the daemon ends the connection (docs/protocol.md,
          // Transport and framing). So a stream the block shows only part of fails here. A subsequence
          // block's `subscribe` never ends; it says that replies it does not show may come.
          c.end();
          await c.until(() => c.ended, 60_000);
          if (!c.ended) {
            throw new Error(
              `the daemon did not end the connection after the client ended its side: it still owes replies the block does not show; so far:\n${c.replies.map(asDoc).join('\n')}`,
            );
          }
          if (c.replies.length > 0) {
            throw new Error(
              `replies the block does not show, after its last request:\n${c.replies.map(asDoc).join('\n')}`,
            );
          }
        }
      } finally {
        c.close();
      }
    },
  );
});

/** Whether actual is the expected reply, binding ids only when it is. */
function matchesQuietly(expected: string, actual: string): boolean {
  const saved = new Map(ids);
  if (matches(expected, actual) === undefined) return true;
  ids.clear();
  for (const [k, v] of saved) ids.set(k, v);
  return false;
}
