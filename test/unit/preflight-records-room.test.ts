import { existsSync, statfsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type PreflightPodman, runPreflight } from '../../src/daemon/preflight.js';
import { cleanupAll, makeTempDir } from '../helpers/resources.js';

afterEach(cleanupAll);

const ENV = { HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1000' };
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

const podman: PreflightPodman = {
  version: async () => '4.3.1',
  probe: async () => '4.3.1',
  imageExists: async () => true,
  smokeRun: async () => undefined,
  inspectRemoteImage: async () => undefined,
  rootless: async () => true,
};

async function recordsChecks(
  recordsMaxSize: (filesystemBytes: number) => string,
  recordsDir?: string,
  minFree = '0',
) {
  const dir = makeTempDir('agentd-unit-preflight-records-');
  const fs = statfsSync(recordsDir === undefined ? dir : dirname(recordsDir));
  const records = recordsDir === undefined ? '' : `  records_dir: ${recordsDir}\n`;
  const text = `daemon:\n  state_dir: ${join(dir, 'state')}\n${records}  records_max_size: ${recordsMaxSize(fs.blocks * fs.bsize)}\n  records_min_free: ${minFree}\nagents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n`;
  const settings = parseConfig(text, join(dir, 'agentd.yaml'), ENV, 1000);
  const results = await runPreflight({ settings, podman, env: ENV, depth: 'cheap', uid: 1000 });
  return { dir, checks: results.filter((r) => r.check === 'records size') };
}

describe('preflight: records_max_size against the records filesystem', () => {
  it('warns when records_max_size is more than the whole filesystem of records_dir, naming the key and the fix', async () => {
    const { dir, checks } = await recordsChecks((bytes) => `${Math.ceil(bytes / GiB) + 1}g`);
    expect(checks).toHaveLength(1);
    expect(checks[0]).toMatchObject({ check: 'records size', status: 'warn' });
    expect(checks[0]?.message).toContain('daemon.records_max_size is ');
    expect(checks[0]?.message).toContain(`more than the filesystem of ${join(dir, 'state', 'records')} (`);
    expect(checks[0]?.message).toContain('retention removes no record for size before the records fill it');
    expect(checks[0]?.fix).toMatch(
      /^Set daemon\.records_max_size to \d+[mgt] or less \(less still for the state dir's own files, if it shares that filesystem\), or daemon\.records_min_free to 640m or more, or daemon\.records_dir on a larger filesystem$/,
    );
  });

  it('counts the room the outputs of the sessions running at once take while sealed (4 of 64m: 640 MiB)', async () => {
    // Within the filesystem by 100 MiB, which the sealing room (2 x 80 MiB archive x 4 sessions) exceeds.
    const { checks } = await recordsChecks((bytes) => `${Math.floor(bytes / MiB) - 100}m`);
    expect(checks).toHaveLength(1);
    expect(checks[0]?.message).toContain(
      'beside 640 MiB for the outputs of 4 session(s) being sealed (twice the archive of resources.output 64m each)',
    );
    const suggested = Number(/to (\d+)m or less/.exec(checks[0]?.fix ?? '')?.[1]);
    // What it suggests leaves that room.
    const { checks: after } = await recordsChecks(() => `${suggested}m`);
    expect(after).toEqual([]);
  });

  // Another filesystem than the temp dir's, if this machine has one (a tmpfs): the archive waits in the
  // state dir's work dir, so only the copy unpacked from it is counted there.
  const other = existsSync('/dev/shm') && statSync('/dev/shm').dev !== statSync(tmpdir()).dev;
  it.skipIf(!other)(
    'counts the archive once when records_dir is on another filesystem than the state dir',
    async () => {
      const { checks } = await recordsChecks(
        (bytes) => `${Math.ceil(bytes / MiB) + 1}m`,
        '/dev/shm/agentd-unit-records',
      );
      expect(checks).toHaveLength(1);
      expect(checks[0]?.message).toContain('(the archive of resources.output 64m each)');
    },
  );

  it('says nothing when records_min_free keeps the room of the outputs being sealed free, and only then', async () => {
    const tooLarge = (bytes: number) => `${Math.ceil(bytes / GiB) + 1}g`;
    // 640 MiB: twice the archive of 64m for each of 4 sessions.
    expect((await recordsChecks(tooLarge, undefined, '640m')).checks).toEqual([]);
    const short = await recordsChecks(tooLarge, undefined, '639m');
    expect(short.checks).toHaveLength(1);
    expect(short.checks[0]?.fix).toContain('or daemon.records_min_free to 640m or more');
  });

  it('says nothing when records_max_size fits the filesystem', async () => {
    const { checks } = await recordsChecks(() => '1m');
    expect(checks).toEqual([]);
  });
});
