import { describe, expect, it } from 'vitest';
import { PodmanClient, podmanUrl } from '../../src/adapters/podman.js';

describe('the ssh:// url podman is given', () => {
  it("writes out ssh's port 22 when the url has none (Podman 4.3.1 fails every call without it)", async () => {
    // Measured: `podman --url ssh://nobody@127.0.0.1/run/podman/podman.sock info` prints
    // `Error: strconv.Atoi: parsing "": invalid syntax`; with :22 it connects (or says why it cannot).
    const calls: (readonly string[])[] = [];
    const client = new PodmanClient({
      bin: '/bin/true',
      url: 'ssh://agentd@build1.example/run/podman/podman.sock',
      onCall: (argv) => calls.push(argv),
    });
    await client.probe(1000).catch(() => {});
    expect(calls[0]?.slice(0, 2)).toEqual(['--url', 'ssh://agentd@build1.example:22/run/podman/podman.sock']);
    expect(podmanUrl('ssh://agentd@127.0.0.1/run/podman/podman.sock?secure=true')).toBe(
      'ssh://agentd@127.0.0.1:22/run/podman/podman.sock?secure=true',
    );
    expect(podmanUrl('ssh://s@s/run/user/1000/podman/podman.sock')).toBe(
      'ssh://s@s:22/run/user/1000/podman/podman.sock',
    );
    expect(podmanUrl('ssh://agentd@[::1]/run/podman/podman.sock')).toBe(
      'ssh://agentd@[::1]:22/run/podman/podman.sock',
    );
  });

  it('leaves a url with a port, and other transports, as they are', () => {
    for (const url of [
      'ssh://agentd@build1.example:2222/run/podman/podman.sock',
      'unix:///run/podman/podman.sock',
      'tcp://127.0.0.1:8080',
    ]) {
      expect(podmanUrl(url)).toBe(url);
    }
  });
});
