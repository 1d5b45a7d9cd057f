import { describe, expect, it } from 'vitest';
import { classifyPodmanFailure, unreachableOutput } from '../../src/adapters/podman-errors.js';

// Podman 4.3.1's stderr, captured from `podman run` / `podman --url unix://... create` against registries on
// 127.0.0.1 (a closed port, a listener that never answers, one that resets, plain HTTP), a proxy on a
// closed port, a .invalid name, and an insecure registry answering 404 and 401.
const warn = (n: number, error: string) =>
  `time="2026-12-07T01:20:2${n}Z" level=warning msg="Failed, retrying in 1s ... (${n}/3). Error: ${error.replaceAll('"', '\\"')}"`;
const localRun = (error: string, ref = '127.0.0.1:1/x:1') =>
  [`Trying to pull ${ref}...`, warn(1, error), warn(2, error), warn(3, error), `Error: ${error}`].join('\n');
const REFUSED =
  'initializing source docker://127.0.0.1:1/x:1: pinging container registry 127.0.0.1:1: Get "https://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused';
const HANG =
  'initializing source docker://127.0.0.1:47311/x:1: pinging container registry 127.0.0.1:47311: Get "https://127.0.0.1:47311/v2/": net/http: TLS handshake timeout';
const RESET =
  'initializing source docker://127.0.0.1:47313/x:1: pinging container registry 127.0.0.1:47313: Get "https://127.0.0.1:47313/v2/": read tcp 127.0.0.1:33332->127.0.0.1:47313: read: connection reset by peer';
const PROXY =
  'initializing source docker://registry.example.invalid/x:1: pinging container registry registry.example.invalid: Get "https://registry.example.invalid/v2/": proxyconnect tcp: dial tcp 127.0.0.1:1: connect: connection refused';
const DNS =
  'Trying to pull registry.example.invalid/x:1...\nError: initializing source docker://registry.example.invalid/x:1: pinging container registry registry.example.invalid: Get "https://registry.example.invalid/v2/": dial tcp: lookup registry.example.invalid on 10.255.255.53:53: no such host';
const PLAIN_HTTP =
  'Trying to pull 127.0.0.1:47312/x:1...\nError: initializing source docker://127.0.0.1:47312/x:1: pinging container registry 127.0.0.1:47312: Get "https://127.0.0.1:47312/v2/": http: server gave HTTP response to HTTPS client';
const MANIFEST_UNKNOWN =
  'Trying to pull 127.0.0.1:47320/x:1...\nError: initializing source docker://127.0.0.1:47320/x:1: reading manifest 1 in 127.0.0.1:47320/x: manifest unknown';
const UNAUTHORIZED =
  'Trying to pull 127.0.0.1:47320/secret:1...\nError: initializing source docker://127.0.0.1:47320/secret:1: reading manifest 1 in 127.0.0.1:47320/secret: unauthorized';
const MANIFEST_INSPECT =
  'Error: reading image "docker://127.0.0.1:1/x:1": pinging container registry 127.0.0.1:1: Get "https://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused';

const run = (stderr: string, image = '127.0.0.1:1/x:1') =>
  classifyPodmanFailure(
    {
      operation: 'run container agentd-x',
      argv: ['run', '--name', 'agentd-x', image],
      exitCode: 125,
      stderr,
    },
    image,
  );
const remoteCreate = (stderr: string, image = '127.0.0.1:1/x:1') =>
  classifyPodmanFailure(
    {
      operation: 'create container agentd-x',
      argv: [
        '--url',
        'ssh://agent@127.0.0.1:2222/run/podman/podman.sock',
        'create',
        '--name',
        'agentd-x',
        image,
      ],
      exitCode: 125,
      stderr,
    },
    image,
  );

describe('a pull that fails at the registry is not the Podman host unreachable', () => {
  it('says a registry that refuses, hangs or resets could not be pulled from, naming it and the reason', () => {
    for (const [stderr, registry, reason] of [
      [localRun(REFUSED), '127.0.0.1:1', 'connect: connection refused'],
      [localRun(HANG, '127.0.0.1:47311/x:1'), '127.0.0.1:47311', 'TLS handshake timeout'],
      [localRun(RESET, '127.0.0.1:47313/x:1'), '127.0.0.1:47313', 'connection reset by peer'],
      // `podman --url ... create` prints no retries, only the final error.
      [`Trying to pull 127.0.0.1:1/x:1...\nError: ${REFUSED}`, '127.0.0.1:1', 'connection refused'],
    ] as const) {
      for (const error of [run(stderr), remoteCreate(stderr)]) {
        expect(error.code, error.message).toBe('IMAGE_PULL_FAILED');
        expect(error.message).toContain(`could not be pulled from ${registry}: pinging container registry`);
        expect(error.message).toContain(reason);
        expect(error.message).toContain(`check that ${registry} runs`);
        expect(error.message).not.toMatch(/cannot reach the Podman host|podman\.socket/);
        // Podman's retry warnings are not repeated: the final error says it all.
        expect(error.message).not.toContain('retrying');
      }
      expect(unreachableOutput(stderr)).toBe(false);
    }
  });

  it('names the proxy, the name that does not resolve, TLS, a refused login and a missing manifest', () => {
    const proxy = run(localRun(PROXY, 'registry.example.invalid/x:1'), 'registry.example.invalid/x:1');
    expect(proxy.code).toBe('IMAGE_PULL_FAILED');
    expect(proxy.message).toContain('could not be pulled from registry.example.invalid: ');
    expect(proxy.message).toContain('HTTPS_PROXY');
    expect(proxy.message).not.toContain('Podman host (');
    const dns = remoteCreate(DNS, 'registry.example.invalid/x:1');
    expect(dns.code).toBe('IMAGE_PULL_FAILED');
    expect(dns.message).toContain('no such host');
    expect(dns.message).toContain('does not resolve');
    const tls = run(PLAIN_HTTP, '127.0.0.1:47312/x:1');
    expect(tls.code).toBe('IMAGE_PULL_FAILED');
    expect(tls.message).toContain('server gave HTTP response to HTTPS client');
    expect(tls.message).toContain('insecure = true in registries.conf');
    const login = run(UNAUTHORIZED, '127.0.0.1:47320/secret:1');
    expect(login.code).toBe('IMAGE_PULL_FAILED');
    expect(login.message).toContain('podman login 127.0.0.1:47320');
    const missing = run(MANIFEST_UNKNOWN, '127.0.0.1:47320/x:1');
    expect(missing.code).toBe('IMAGE_NOT_FOUND');
    expect(missing.message).toContain(
      'image 127.0.0.1:47320/x:1 is not in 127.0.0.1:47320 (reading manifest 1',
    );
    expect(missing.message).toContain('podman pull 127.0.0.1:47320/x:1');
    const inspect = classifyPodmanFailure({
      operation: 'read the image from its registry',
      argv: ['manifest', 'inspect', '--', '127.0.0.1:1/x:1'],
      exitCode: 125,
      stderr: MANIFEST_INSPECT,
    });
    expect(inspect.code).toBe('IMAGE_PULL_FAILED');
    expect(inspect.message).toContain('image 127.0.0.1:1/x:1 could not be pulled from 127.0.0.1:1');
  });

  it('still says a host whose socket is gone, or whose ssh port refuses, cannot be reached', () => {
    const gone =
      'Cannot connect to Podman. Please verify your connection to the Linux system using `podman system connection list`, or try `podman machine init` and `podman machine start` to manage a new Linux VM\nError: unable to connect to Podman socket: Get "http://d/v4.3.1/libpod/_ping": dial unix /tmp/gone.sock: connect: no such file or directory';
    const refused = 'Error: failed to connect: dial tcp 127.0.0.1:1: connect: connection refused';
    // The engine's connection lost after the pull began is the host's, not the registry's.
    const dropped = `Trying to pull 127.0.0.1:1/x:1...\nError: unable to connect to Podman socket: Get "http://d/v4.3.1/libpod/_ping": dial tcp 127.0.0.1:1: connect: connection refused`;
    for (const stderr of [gone, refused, dropped]) {
      expect(remoteCreate(stderr).code).toBe('PODMAN_UNREACHABLE');
      expect(unreachableOutput(stderr)).toBe(true);
    }
  });

  it('says a pull still running at the deadline waited on the registry, not on a sick Podman', () => {
    // What `podman run` / `podman --url ... create` had printed when agentd's deadline ended them: the
    // registry on 127.0.0.1:47311 accepts connections and never answers (Podman retries every ~21 s).
    for (const [stderr, last] of [
      ['Trying to pull 127.0.0.1:47311/x:1...', undefined],
      [`Trying to pull 127.0.0.1:47311/x:1...\n${warn(1, HANG)}`, 'TLS handshake timeout'],
    ] as const) {
      const error = classifyPodmanFailure(
        {
          operation: 'run container agentd-x',
          argv: ['run', '--name', 'agentd-x', '127.0.0.1:47311/x:1'],
          stderr,
          timedOut: true,
          timeoutMs: 10_000,
        },
        '127.0.0.1:47311/x:1',
      );
      expect(error.code).toBe('PODMAN_TIMEOUT');
      expect(error.message).toContain(
        "Podman was still pulling image 127.0.0.1:47311/x:1 from 127.0.0.1:47311 when the call's deadline of 10s (daemon.podman_timeout) passed",
      );
      expect(error.message).toContain('podman pull 127.0.0.1:47311/x:1');
      expect(error.message).not.toContain('podman info');
      if (last === undefined) expect(error.message).not.toContain('its last try');
      else
        expect(error.message).toContain(
          `(its last try: pinging container registry 127.0.0.1:47311: Get "https://127.0.0.1:47311/v2/": net/http: ${last})`,
        );
    }
    // A deadline with no pull under way is Podman's own.
    const hung = classifyPodmanFailure({
      operation: 'list containers',
      argv: ['ps'],
      stderr: '',
      timedOut: true,
      timeoutMs: 10_000,
    });
    expect(hung.message).toContain('check that Podman is healthy with `podman info`');
  });

  it('says a blob cut short came from the registry, and a disk that is full is where Podman runs', () => {
    // Podman 4.3.1 pulling from a registry on 127.0.0.1 that closes the connection 1 MB into the layer,
    // and into an image store on a 40 MB tmpfs.
    const head =
      'Trying to pull 127.0.0.1:47322/base:1...\nGetting image source signatures\nCopying blob sha256:f69ee9c96ce4b58b12756f6bb46755a7149de9de523000243e7f6d8791c09d83\n';
    const cut = remoteCreate(
      `${head}Error: writing blob: storing blob to file "/var/tmp/storage3230019084/1": happened during read: unexpected EOF`,
      '127.0.0.1:47322/base:1',
    );
    expect(cut.code).toBe('IMAGE_PULL_FAILED');
    expect(cut.message).toContain('could not be pulled from 127.0.0.1:47322: writing blob: ');
    expect(cut.message).toContain('check that 127.0.0.1:47322 runs');
    expect(cut.message).not.toContain('cannot reach the Podman host');
    const full = run(
      `${head}Error: writing blob: adding layer with blob "sha256:f69ee9c96ce4b58b12756f6bb46755a7149de9de523000243e7f6d8791c09d83": processing tar file(write /usr/lib/git-core/git-http-fetch: no space left on device): exit status 1`,
      '127.0.0.1:47322/base:1',
    );
    expect(full.code).toBe('IMAGE_PULL_FAILED');
    expect(full.message).toContain('was fetched from 127.0.0.1:47322 but could not be stored by Podman');
    expect(full.message).toContain('no space left on device');
    expect(full.message).toContain('podman system df');
    expect(full.message).not.toContain('check that 127.0.0.1:47322 runs');
  });

  it('says a blob the registry redirected to storage that failed could not be pulled, and hides the presigned URL', () => {
    // Podman 4.3.1 pulling from a registry on 127.0.0.1 that answers a blob's GET with a 307 to a presigned
    // URL (as registries that keep blobs in object storage do) where nothing answers: for the image's
    // config, then for a layer (the config served).
    const url =
      'http://127.0.0.1:1/blobs/data?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAPULLMEMOEXAMPLE%2F20261207%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=5ecre75ecre75ecre75ecre75ecre75ecre75ecre75ecre75ecre75ecre7abcd&token=REGISTRYTOKENpullmemo';
    const config = `parsing image configuration: Get "${url}": dial tcp 127.0.0.1:1: connect: connection refused`;
    const layer = `reading blob sha256:09ecb6ebc8bcefc733f6f2ec44f791abeed6a99edf0cc31519637898aebd52d8: Get "${url}": dial tcp 127.0.0.1:1: connect: connection refused`;
    const copying =
      'Getting image source signatures\nCopying blob sha256:09ecb6ebc8bcefc733f6f2ec44f791abeed6a99edf0cc31519637898aebd52d8';
    const image = '127.0.0.1:47124/agentd-pullmemo/presigned:1';
    const stderrs = [
      `Trying to pull ${image}...\n${[1, 2, 3].map((n) => warn(n, config)).join('\n')}\nError: ${config}`,
      `Trying to pull ${image}...\n${[1, 2, 3].map((n) => `${copying}\n${warn(n, layer)}`).join('\n')}\n${copying}\nError: ${layer}`,
    ];
    for (const stderr of stderrs) {
      expect(unreachableOutput(stderr)).toBe(false);
      for (const error of [run(stderr, image), remoteCreate(stderr, image)]) {
        expect(error.code, error.message).toBe('IMAGE_PULL_FAILED');
        expect(error.message).toContain(`image ${image} could not be pulled from 127.0.0.1:47124: `);
        expect(error.message).toContain(
          'Get "http://127.0.0.1:1/blobs/data?(query hidden)": dial tcp 127.0.0.1:1',
        );
        expect(error.message).not.toContain('cannot reach the Podman host');
        for (const secret of ['X-Amz', 'AKIAPULLMEMOEXAMPLE', '5ecre75ecre7', 'REGISTRYTOKENpullmemo'])
          expect(error.message).not.toContain(secret);
      }
    }
    // Its last try, for a pull still running at the deadline, and any other error's repeated lines.
    const [configStderr = ''] = stderrs;
    const stillPulling = classifyPodmanFailure(
      {
        operation: 'pull image x',
        argv: ['pull', '--', image],
        stderr: configStderr,
        timedOut: true,
        timeoutMs: 600_000,
      },
      image,
    );
    expect(stillPulling.message).toContain(
      'its last try: parsing image configuration: Get "http://127.0.0.1:1/blobs/data?(query hidden)"',
    );
    const other = classifyPodmanFailure({
      operation: 'list containers',
      argv: ['ps'],
      exitCode: 125,
      stderr: `Error: something else: Get "${url}": EOF`,
    });
    expect(other.message).toContain('blobs/data?(query hidden)');
    expect(other.message).not.toContain('5ecre75ecre7');
  });
});
