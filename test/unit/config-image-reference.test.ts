/**
 * An agent's image with a user and password in it (`docker://user:password@registry/x`) was said valid,
 * shown by validate with the password, and refused by Podman at every session ("invalid reference format").
 */
import { describe, expect, it } from 'vitest';
import { parseConfigText, problemsOf } from '../helpers/config-problems.js';

const agent = (image: string) => `agents:\n  - name: demo\n    image: "${image}"\n    command: ["run"]\n`;

describe('an image reference with an @', () => {
  it('is refused unless a digest follows it, without showing the value', () => {
    for (const image of [
      'docker://bob:Pa55w0rd-x@registry.example/app',
      'bob:Pa55w0rd-x@registry.example/app',
    ]) {
      const error = problemsOf(agent(image));
      expect(error.problems).toHaveLength(1);
      expect(error.problems[0]).toMatchObject({ path: 'agents[0].image', line: 3 });
      expect(error.problems[0]?.message).toContain('what follows its @ must be a digest like sha256:');
      expect(error.message).toContain('podman login');
      expect(error.message).not.toContain('Pa55w0rd');
    }
  });

  it('is accepted with a digest, with or without a tag', () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    for (const image of [
      `registry.example/app@${digest}`,
      `alpine:3.20@${digest}`,
      `docker://registry.example:5000/app:1@${digest}`,
    ]) {
      expect(parseConfigText(agent(image)).agents[0]?.image).toBe(image);
    }
  });
});
