/**
 * A value that looks like a credential, pasted into the wrong key, is not repeated by the problem about
 * it: `validate`, its --json, a failed start and the daemon's reload error (all of them ConfigError's
 * problems) showed it whole, and those reach terminals, CI logs and the journal. Its length, key path,
 * line and column are shown; a value that is plainly a name or a path still is, whole.
 */
import { describe, expect, it } from 'vitest';
import { looksLikeSecret } from '../../src/config/quoted.js';
import { problemsOf } from '../helpers/config-problems.js';

const GITHUB = 'ghp_R4nd0mT0k3nV4lu3abcdefghijklmnopqrst';
const OPENAI = 'sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD';
const HEX = 'd41d8cd98f00b204e9800998ecf8427e';
const AWS_ID = 'AKIAIOSFODNN7EXAMPLE';
const AWS_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const SLACK = 'xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx';

describe('a credential value pasted into the wrong key', () => {
  it('is not repeated by any problem, in any key, nor as a key', () => {
    const file =
      'agents:\n  - name: a\n    image: x\n    command: [x]\n' +
      `    mounts:\n      - source: ${GITHUB}\n        target: /data\n` +
      `    context: ${OPENAI}\n` +
      `    credentials:\n      - name: ${SLACK}\n        source: env:X\n` +
      `    caches:\n      ${GITHUB}: /home/x\n` +
      `    cap_add: [${HEX}]\n` +
      `    network: ${AWS_ID}\n` +
      `    repo: ${AWS_SECRET}\n` +
      `    timeout: ${GITHUB}\n` +
      `    hosts: [${OPENAI}]\n` +
      `    schedule: "${GITHUB} * * * *"\n`;
    const error = problemsOf(file);
    const shown = `${error.message}\n${JSON.stringify(error.problems)}`;
    for (const value of [GITHUB, OPENAI, HEX, AWS_ID, AWS_SECRET, SLACK]) {
      expect(shown).not.toContain(value);
      expect(shown).not.toContain(value.slice(0, 12));
    }
    const paths = error.problems.map((p) => p.path);
    expect(paths).toContain('agents[0].mounts[0].source');
    expect(paths).toContain('agents[0].network');
    expect(paths).toContain('agents[0].repo');
    expect(paths).toContain('agents[0].caches[a key (40 characters, not shown: it looks like a credential)]');
    const mount = error.problems.find((p) => p.path === 'agents[0].mounts[0].source');
    expect(mount?.message).toBe(
      'the value (40 characters, not shown: it looks like a credential) is a relative path; write an absolute host path (it starts with /)',
    );
    expect(mount?.line).toBe(6);
  });

  it('still shows a name, a word or a path that is plainly not one', () => {
    const error = problemsOf(
      'agents:\n  - name: Reviewer\n    image: x\n    command: [x]\n    network: brigde\n' +
        '    mounts:\n      - source: data/build-2024-artifacts\n        target: /data\n    timeout: 10 minutes\n',
    );
    expect(error.problems.map((p) => p.message.split(' ')[0])).toEqual([
      '"Reviewer"',
      '"brigde"',
      '"data/build-2024-artifacts"',
      '"10',
    ]);
  });

  it('is told by how tokens are made', () => {
    for (const value of [
      GITHUB,
      OPENAI,
      HEX,
      AWS_ID,
      AWS_SECRET,
      SLACK,
      'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc',
      '-----BEGIN OPENSSH PRIVATE KEY-----',
      'a\nb',
      '{"type": "service_account"}',
    ])
      expect(looksLikeSecret(value), value).toBe(true);
    for (const value of [
      'Reviewer',
      '/srv/datasets',
      'data/build-2024-artifacts',
      'GITHUB_TOKEN_2024',
      'my_service_api_token',
      'Europe/Berlin',
      '*/5 * * * *',
      'nightly-{date}',
      'localhost/agentd-base:bookworm',
      '123e4567-e89b-12d3-a456-426614174000',
      '/tmp/agentd-run-JJfM3P/agentd-long-paths-TOO9dh/scratch',
      'X'.repeat(300),
    ])
      expect(looksLikeSecret(value), value).toBe(false);
  });
});
