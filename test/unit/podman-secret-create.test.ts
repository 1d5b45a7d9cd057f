/**
 * Creating a session's secret through the real PodmanClient, with a stand-in `podman`: a name in use at
 * the first try is an earlier daemon's leftover of the same session (its create, killed with it, finished
 * after the next start's reconciliation), replaced once; never its value kept, never removed twice.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { standInPodman } from '../helpers/stand-in-podman.js';

const dir = mkdtempSync(join(tmpdir(), 'agentd-unit-secret-create-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A `podman` whose secret store holds `name` from the start; `secret create` of a held name fails as Podman's does. */
function storeHolding(name: string, { keepsIt = false } = {}) {
  const { bin, client } = standInPodman(
    dir,
    (self) => `echo "$*" >> '${self}.log'
held='${self}.held'
[ -e "$held" ] || echo '${name}' > "$held"
if [ "$1 $2" = 'secret rm' ]; then
  ${keepsIt ? ':' : `grep -vx "$4" "$held" > "$held.new"; mv "$held.new" "$held"`}
  exit 0
fi
if [ "$1 $2" = 'secret create' ]; then
  for last; do :; done
  shift $(($# - 2)); created="$1"
  if grep -qx "$created" "$held"; then echo "Error: $created: secret name in use" >&2; exit 125; fi
  cat > /dev/null; echo "$created" >> "$held"; exit 0
fi
exit 0
`,
  );
  const calls = () =>
    readFileSync(`${bin}.log`, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split(' ').slice(0, 2).join(' '));
  return { client, calls };
}

describe('createSecret', () => {
  it('replaces a secret of the same name made before it, once', async () => {
    const { client, calls } = storeHolding('agentd-x-0123456789abcdef-0');
    await client.createSecret('agentd-x-0123456789abcdef-0', Buffer.from('value'), {});
    expect(calls()).toEqual(['secret create', 'secret rm', 'secret create']);
  });

  it('fails when the name is in use again after the replacement, instead of taking that secret for its own', async () => {
    const { client, calls } = storeHolding('agentd-x-0123456789abcdef-0', { keepsIt: true });
    await expect(
      client.createSecret('agentd-x-0123456789abcdef-0', Buffer.from('value'), {}),
    ).rejects.toThrow(/secret name in use/);
    expect(calls()).toEqual(['secret create', 'secret rm', 'secret create']);
  });
});
