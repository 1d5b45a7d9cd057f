import { describe, expect, it } from 'vitest';
import { describeRepoProblem, parseOrigin, parseRepoUrl } from '../../src/repo-url.js';

function isControl(ch: string): boolean {
  const code = ch.charCodeAt(0);
  return code < 0x20 || (code >= 0x7f && code <= 0x9f);
}

function problemOf(raw: string): string {
  const check = parseRepoUrl(raw);
  if (check.ok) throw new Error(`${JSON.stringify(raw)} was accepted as ${check.repo.url}`);
  return describeRepoProblem(raw, check);
}

describe('parseRepoUrl: accepted URLs and their one normalised form', () => {
  it.each([
    ['https://example.com/org/repo.git', 'https://example.com/org/repo.git', 'https://example.com'],
    ['HTTPS://Example.COM/org/repo.git', 'https://example.com/org/repo.git', 'https://example.com'],
    ['https://example.com:443/r.git', 'https://example.com/r.git', 'https://example.com'],
    ['https://example.com:8443/r.git', 'https://example.com:8443/r.git', 'https://example.com:8443'],
    ['http://127.0.0.1:80/r.git', 'http://127.0.0.1/r.git', 'http://127.0.0.1'],
    ['http://127.0.0.1:18081/r.git', 'http://127.0.0.1:18081/r.git', 'http://127.0.0.1:18081'],
    ['git://127.0.0.1:9418/x.git', 'git://127.0.0.1/x.git', 'git://127.0.0.1'],
    ['git://Git.Example/a/../b.git', 'git://git.example/b.git', 'git://git.example'],
    ['https://exa%6Dple.com/r.git', 'https://example.com/r.git', 'https://example.com'],
    ['https://bücher.example/r.git', 'https://xn--bcher-kva.example/r.git', 'https://xn--bcher-kva.example'],
    ['https://[::1]:8080/r.git', 'https://[::1]:8080/r.git', 'https://[::1]:8080'],
    ['https://example.com/a%20b.git', 'https://example.com/a%20b.git', 'https://example.com'],
  ])('%s → %s', (raw, url, origin) => {
    const check = parseRepoUrl(raw);
    expect(check).toMatchObject({ ok: true, repo: { url, origin } });
    // Normalising is idempotent: the normalised form checks to itself.
    expect(parseRepoUrl(url)).toMatchObject({ ok: true, repo: { url, origin } });
  });
});

describe('parseRepoUrl: refused URLs, each with the reason and the fix', () => {
  it.each([
    // git reads these as another transport; a URL parser would have accepted several of them.
    [
      'https:/\\evil.com/x',
      'contains a backslash at character 8',
      'https:/\\host/x is an ssh address to git',
    ],
    ['https:\\\\evil.com/x', 'contains a backslash at character 7', 'use forward slashes'],
    ['https:/evil.com/x', 'must have two slashes after "https:"', 'git reads it as an scp-style ssh address'],
    ['https:evil.com/x', 'must have two slashes after "https:"', 'scp-style ssh'],
    ['evil.com:org/x.git', 'is an scp-style ssh address (host:path) to git'],
    ['git@github.com:o/r.git', 'is an scp-style ssh address'],
    ['ext::sh -c touch% /tmp/pwned', 'contains whitespace'],
    ['ext::sh', `uses git's "ext::" transport syntax, which runs a program`],
    ['fd::17', `uses git's "fd::" transport syntax`],
    ['ssh://host/x.git', 'uses ssh://; only https://, http:// or git:// repositories are supported'],
    ['file:///etc/passwd', 'uses file://'],
    ['/srv/git/x.git', 'must start with https://, http:// or git://'],
    ['./x.git', 'must start with https://'],
    ['--upload-pack=touch /tmp/x', 'contains whitespace'],
    ['-u', 'must start with https://'],
    // Control characters and whitespace, named with where they are.
    ['https://example.com/x\u0000.git', 'contains the control character U+0000 at character 22; remove it'],
    ['https://example.com/x\n.git', 'contains the control character U+000A at character 22'],
    ['https://example.com/x\u001b[31m.git', 'contains the control character U+001B'],
    ['https://example.com/x\u0085', 'contains the control character U+0085'],
    ['https://example.com/x\t.git', 'contains the control character U+0009'],
    [
      'https://example.com/a b.git',
      'contains whitespace (U+0020) at character 22',
      'write a space in a path as %20',
    ],
    [' https://example.com/x.git', 'contains whitespace (U+0020) at character 1'],
    ['https://example.com/x.git\u00a0', 'contains whitespace (U+00A0)'],
    ['https://example.com/x.git\u2028', 'contains whitespace (U+2028)'],
    ['git://127.0.0.1/x%00host=evil', 'contains the encoded control character %00', 'git decodes it'],
    ['https://example.com/x%0a.git', 'contains the encoded control character %0a'],
    // Shapes git handles differently from a URL parser.
    ['https://example.com/x.git?ref=main', 'must not have a query (?...) or fragment (#...)'],
    ['https://example.com/x.git#main', 'must not have a query'],
    ['https://example.com', 'names no repository; add its path'],
    ['https://example.com/', 'names no repository'],
    ['https:///', 'is not a valid URL'],
    ['git://ex%41mple/x.git', 'has a host git cannot use'],
    ['', 'is empty'],
  ])('%j', (raw, ...fragments) => {
    const message = problemOf(raw);
    for (const fragment of fragments) expect(message).toContain(fragment);
    // The value is quoted with its control characters escaped: a message never carries them raw.
    expect([...message].filter(isControl)).toEqual([]);
  });

  it('never repeats a user or password from the URL', () => {
    for (const raw of [
      'https://me:hunter2@example.com/r.git',
      'https://hunter2@example.com/r.git',
      'https:/\\me:hunter2@evil.com/x',
      'git://me:hunter2@example.com/r.git',
      'https://me:hunter2 @example.com/r.git',
    ]) {
      const message = problemOf(raw);
      expect(message).toContain('must not contain a user or password; use repo_token for authentication');
      expect(message).not.toContain('hunter2');
    }
  });

  it('never repeats a URL that may carry a password or token past the user check', () => {
    for (const raw of [
      // A password with a `/`, `?` or `#` (AWS CodeCommit's generated ones have `/` and `+`): the `@`
      // comes after what a URL parser reads as the host and port.
      'https://git-user-at-123:Hunter2/abc+def=@git-codecommit.us-east-1.amazonaws.com/v1/repos/r',
      'https://me:pa?Hunter2@example.com/r.git',
      'https://me:pa#Hunter2@example.com/r.git',
      'https:/me:pa/Hunter2@example.com/r.git',
      // A token in the query (GitLab's private_token), also when another problem is found first.
      'https://gitlab.example.com/org/r.git?private_token=glpat-Hunter2',
      'https://gitlab.example.com/org/r.git#Hunter2',
      'https://gitlab.example.com/org/r .git?private_token=Hunter2',
    ]) {
      const message = problemOf(raw);
      expect(message).not.toContain('Hunter2');
    }
    // Without one, the URL is still named: the reader sees which one is meant.
    expect(problemOf('ftp://example.com/r.git')).toContain('"ftp://example.com/r.git"');
    expect(problemOf('git@github.com:o/r.git')).toContain('"git@github.com:o/r.git"');
  });

  it('refuses an overlong URL without repeating it', () => {
    const raw = `https://example.com/${'a'.repeat(3000)}.git`;
    const message = problemOf(raw);
    expect(message).toBe('is longer than 2048 characters');
  });
});

describe('parseOrigin', () => {
  it.each([
    ['https://git.example.com', 'https://git.example.com'],
    ['https://git.example.com/', 'https://git.example.com'],
    ['HTTPS://Git.Example.com:443', 'https://git.example.com'],
    ['http://127.0.0.1:8080', 'http://127.0.0.1:8080'],
  ])('%s → %s', (raw, origin) => {
    expect(parseOrigin(raw)).toEqual({ ok: true, origin });
  });

  it.each([
    ['https://git.example.com/org', 'must be an origin, scheme://host[:port], without a path'],
    ['git.example.com', 'must start with https://'],
    ['https://user@git.example.com', 'must not contain a user or password'],
    ['https://git.example.com\n', 'contains the control character U+000A'],
  ])('%j is refused', (raw, fragment) => {
    const check = parseOrigin(raw);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.problem).toContain(fragment);
  });
});
