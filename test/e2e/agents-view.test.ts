/**
 * `agentd agents` against the real daemon: besides image, limits and credential sources, what each
 * agent's sessions reach on the host side, as the daemon loaded it (daemon.user_namespace inherited or
 * overridden, each mount read-only or read-write, the context directory, caches, the hosts it may run on,
 * its own webhooks), in the text and in `--json`; never a credential value, a webhook's query or the
 * token-like parts of its URL, nor a token pasted into a command.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { TEST_IMAGE } from '../helpers/podman.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

const SECRET = 'sk-agents-view-3b9e1d7c5a2f4e60';
const HOOK_SECRET = 'whsec-agents-view-8c2d4f6a1e3b5d70';
const HOOK_URL = 'http://127.0.0.1:65000/services/T0AB12CD3/B0EF45GH6/abcdefghijklmnopqrstuvwx?token=q7x9z2';
const SHOWN_HOOK = 'http://127.0.0.1:65000/services/…/…/…?…';
/** A token the operator pasted into a command instead of making it a credential. */
const PASTED = 'ghp_16C7e42F292c6912E7710c838347Ae178B4a';

let d: TestDaemon;
let dir: string;

beforeAll(async () => {
  dir = makeTempDir('agentd-e2e-agents-view-');
  for (const sub of ['data', 'results', 'ctx']) mkdirSync(join(dir, sub));
  d = await startDaemon(
    {
      daemon: { user_namespace: 'auto' },
      agents: [
        {
          name: 'inherits',
          image: TEST_IMAGE,
          command: ['true'],
          mounts: [{ source: join(dir, 'data'), target: '/data' }],
        },
        {
          name: 'own',
          image: TEST_IMAGE,
          command: ['sh', '-c', `test -n 'Authorization: Bearer ${PASTED}'`],
          user_namespace: 'host',
          mounts: [{ source: join(dir, 'results'), target: '/results', read_only: false }],
          context: join(dir, 'ctx'),
          caches: { npm: '/home/own/.npm' },
          credentials: [{ name: 'API_KEY', source: 'env:AGENTD_E2E_VIEW_KEY' }],
          notify: [{ url: HOOK_URL, secret: 'env:AGENTD_E2E_VIEW_HOOK', outcomes: ['failed'] }],
        },
      ],
    },
    { env: { AGENTD_E2E_VIEW_KEY: SECRET, AGENTD_E2E_VIEW_HOOK: HOOK_SECRET } },
  );
});

afterAll(async () => {
  if (d?.running) expect(await d.stop('SIGTERM', 30_000)).toBe(0);
  await cleanupAll();
});

describe('agentd agents', () => {
  it("shows what each agent's sessions reach, as loaded, and no credential value", async () => {
    const result = await d.cli(['agents', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const { agents } = JSON.parse(result.stdout) as { agents: Record<string, unknown>[] };
    expect(agents[0]).toMatchObject({
      name: 'inherits',
      userNamespace: 'auto',
      mounts: [{ source: join(dir, 'data'), target: '/data', readOnly: true }],
      caches: [],
      hosts: ['local'],
      notify: [],
    });
    expect(agents[1]).toMatchObject({
      name: 'own',
      userNamespace: 'host',
      mounts: [{ source: join(dir, 'results'), target: '/results', readOnly: false }],
      context: join(dir, 'ctx'),
      caches: [{ name: 'npm', target: '/home/own/.npm' }],
      hosts: ['local'],
      credentials: [{ name: 'API_KEY', source: 'env:AGENTD_E2E_VIEW_KEY' }],
      notify: [{ url: SHOWN_HOOK, secret: 'env:AGENTD_E2E_VIEW_HOOK', outcomes: ['failed'] }],
      // The rest of the command as written; the pasted token not repeated.
      command: ['sh', '-c', "test -n 'Authorization: Bearer <hidden>'"],
    });

    const text = await d.cli(['agents']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(
      `inherits: ${TEST_IMAGE} ["true"]\n` +
        '    repo (none: give one per trigger), network bridge, no timeout\n' +
        '    credentials none\n' +
        '    limits memory 2g (no swap), cpus unlimited, pids 4096, disk 1g, output 64m\n' +
        '    hosts local, user_namespace auto\n' +
        `    mount ${join(dir, 'data')} at /data, read-only\n`,
    );
    expect(text.stdout).toContain(
      '    hosts local, user_namespace host\n' +
        `    mount ${join(dir, 'results')} at /results, read-write\n` +
        `    context ${join(dir, 'ctx')} at /agentd/context, read-only\n` +
        '    caches npm at /home/own/.npm\n' +
        `    notify ${SHOWN_HOOK} (signed with env:AGENTD_E2E_VIEW_HOOK), on failed\n`,
    );
    for (const out of [result.stdout, text.stdout]) {
      for (const hidden of [
        SECRET,
        HOOK_SECRET,
        PASTED,
        'token=q7x9z2',
        'abcdefghijklmnopqrstuvwx',
        'T0AB12CD3',
      ]) {
        expect(out).not.toContain(hidden);
      }
    }
  });
});
