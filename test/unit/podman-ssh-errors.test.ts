/**
 * An ssh:// host that refuses agentd names the fix for what it refused: Podman 4.3's own words, as it
 * printed them against an sshd on 127.0.0.1 (a key not in authorized_keys, a host key that is not the
 * one in known_hosts, a socket path that does not exist there, an identity file that is gone).
 */
import { describe, expect, it } from 'vitest';
import { classifyPodmanFailure } from '../../src/adapters/podman-errors.js';

const argv = [
  '--url',
  'ssh://agentd@127.0.0.1:22987/run/podman/podman.sock?secure=true',
  '--identity',
  '/etc/agentd/id_ed25519',
  'version',
  '--format',
  'json',
];
const probe = (stderr: string, args = argv) =>
  classifyPodmanFailure({ operation: 'probe the host', argv: args, exitCode: 125, stderr });

describe("an ssh:// host's refusal", () => {
  it('of the key: names the identity and authorized_keys, not the API service', () => {
    const error = probe(
      'Error: failed to connect: ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey], no supported methods remain',
    );
    expect(error.code).toBe('PODMAN_UNREACHABLE');
    expect(error.message).toContain("refused this machine's key");
    expect(error.message).toContain('ssh-keygen -y -f /etc/agentd/id_ed25519');
    expect(error.message).toContain('~/.ssh/authorized_keys');
    expect(error.message).toContain('ssh -i /etc/agentd/id_ed25519 -p 22987 agentd@127.0.0.1');
    expect(error.message).not.toContain('systemctl enable --now podman.socket');
  });

  it('of a host key that changed: names known_hosts and how to check the new fingerprint', () => {
    const error = probe(
      'time="2026-12-06T12:59:20Z" level=warning msg="ssh host key mismatch for host 127.0.0.1:22987, got key SHA256:+iwtYzgEwUwLl9t9ntCLBgFomt0GmQJvOxdcTyWmmj0 of type ssh-ed25519"\nError: failed to connect: ssh: handshake failed: knownhosts: key mismatch',
    );
    expect(error.code).toBe('PODMAN_UNREACHABLE');
    expect(error.message).toContain('~/.ssh/known_hosts');
    expect(error.message).toContain('ssh-keyscan -p 22987 127.0.0.1 | ssh-keygen -lf -');
    expect(error.message).toContain('SHA256:+iwtYzgEwUwLl9t9ntCLBgFomt0GmQJvOxdcTyWmmj0');
  });

  it('to open the socket: names the path in the url and the API service', () => {
    const error = probe(
      'Cannot connect to Podman. Please verify your connection to the Linux system using `podman system connection list`, or try `podman machine init` and `podman machine start` to manage a new Linux VM\nError: unable to connect to Podman socket: Get "http://d/v4.3.1/libpod/_ping": ssh: rejected: connect failed (open failed)',
    );
    expect(error.code).toBe('PODMAN_UNREACHABLE');
    expect(error.message).toContain('could not open the Podman socket the url names');
    expect(error.message).toContain('/run/user/UID/podman/podman.sock');
  });

  it('of an identity file it cannot read: names identity:', () => {
    const error = probe(
      'Error: failed to read identity "/etc/agentd/id_ed25519": open /etc/agentd/id_ed25519: no such file or directory',
    );
    expect(error.message).toContain("the host's identity: key cannot be read");
  });

  it('of the connection itself (a closed port, a reset, a name that does not resolve): names sshd, not the API service', () => {
    // Podman 4.3.1 against ssh://nobody@127.0.0.1:1/..., a listener on 127.0.0.1 that resets, and a .invalid name.
    for (const stderr of [
      'Error: failed to connect: dial tcp 127.0.0.1:22987: connect: connection refused',
      'Error: failed to connect: dial tcp 127.0.0.1:22987: connect: connection reset by peer',
    ]) {
      const error = probe(stderr);
      expect(error.code).toBe('PODMAN_UNREACHABLE');
      expect(error.message).toContain('cannot open an ssh connection to 127.0.0.1 port 22987');
      expect(error.message).toContain('`ssh -p 22987 agentd@127.0.0.1`');
      expect(error.message).not.toContain('systemctl enable --now podman.socket');
    }
    const dns = probe(
      'Error: failed to connect: dial tcp: lookup podman-host.invalid on 10.255.255.53:53: no such host',
      ['--url', 'ssh://agentd@podman-host.invalid:22/run/podman/podman.sock', 'version'],
    );
    expect(dns.code).toBe('PODMAN_UNREACHABLE');
    expect(dns.message).toContain('podman-host.invalid, does not resolve on this machine');
  });

  it('is not taken for one over unix://', () => {
    const unix = probe('Error: unable to connect to Podman socket: ssh: rejected: connect failed', [
      '--url',
      'unix:///run/podman/podman.sock',
      'ps',
    ]);
    expect(unix.message).not.toContain('could not open the Podman socket the url names');
  });
});
