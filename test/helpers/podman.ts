import { execa } from 'execa';
import { NAME_PREFIX } from '../../src/constants.js';

/** The image every e2e test runs; scripts/build-image.sh builds it. */
export const TEST_IMAGE = 'localhost/agentd-base:bookworm';

/** Runs podman with the given arguments and parses its JSON output; throws with stderr on failure. */
export async function podmanJson<T = unknown>(args: string[]): Promise<T> {
  const result = await execa('podman', args, { reject: false, timeout: 60_000 });
  if (result.exitCode !== 0) {
    throw new Error(`podman ${args.join(' ')} exited with ${result.exitCode}: ${result.stderr}`);
  }
  return JSON.parse(result.stdout || 'null') as T;
}

export interface ListedContainer {
  name: string;
  id: string;
  state: string;
  labels: Record<string, string>;
}

/** What `podman ps -a` shows a user: containers whose name starts with prefix. */
export async function listAgentdContainers(prefix = NAME_PREFIX): Promise<ListedContainer[]> {
  const entries =
    (await podmanJson<
      { Names?: string[]; Id: string; State: string; Labels?: Record<string, string> | null }[]
    >(['ps', '--all', '--format', 'json'])) ?? [];
  return entries
    .map((e) => ({ name: e.Names?.[0] ?? '', id: e.Id, state: e.State, labels: e.Labels ?? {} }))
    .filter((c) => c.name.startsWith(prefix));
}

/** What `podman secret ls` shows a user: secret names that start with prefix. */
export async function listSecrets(prefix = NAME_PREFIX): Promise<string[]> {
  const result = await execa('podman', ['secret', 'ls', '--format', '{{.Name}}'], { timeout: 60_000 });
  return result.stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((name) => name !== '' && name.startsWith(prefix));
}

/** What `podman volume ls` shows a user: volume names that start with prefix. */
export async function listVolumes(prefix = NAME_PREFIX): Promise<string[]> {
  const result = await execa('podman', ['volume', 'ls', '--format', '{{.Name}}'], { timeout: 60_000 });
  return result.stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((name) => name !== '' && name.startsWith(prefix));
}
