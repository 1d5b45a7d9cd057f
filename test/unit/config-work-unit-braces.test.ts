/**
 * A schedule's work_unit with a placeholder written wrong, "nightly-{date" or "nightly-date}", was
 * accepted: every scheduled session's work unit would have carried the brace as it is.
 */
import { describe, expect, it } from 'vitest';
import { parseConfigText, problemsOf } from '../helpers/config-problems.js';

const agent = (workUnit: string) =>
  'agents:\n  - name: demo\n    image: localhost/agentd-base:bookworm\n    command: ["run"]\n' +
  `    repo: https://git.example.com/org/app.git\n    schedule:\n      cron: "0 3 * * *"\n      work_unit: "${workUnit}"\n`;

describe('a work_unit template', () => {
  it('with a brace that is not part of a placeholder is refused, at the brace', () => {
    for (const [template, brace, position] of [
      ['nightly-{date', '{', 9],
      ['nightly-date}', '}', 13],
      ['{agent}-{time}-}', '}', 16],
    ] as const) {
      const error = problemsOf(agent(template));
      expect(error.problems).toHaveLength(1);
      expect(error.problems[0]).toMatchObject({ path: 'agents[0].schedule.work_unit', line: 8 });
      expect(error.problems[0]?.message).toBe(
        `has a ${brace} at position ${position} that is not part of a placeholder; write each placeholder whole: {agent}, {date}, {time}, {firing}`,
      );
    }
  });

  it('with whole placeholders is accepted', () => {
    const settings = parseConfigText(agent('{agent}-{date}T{time}-{firing}'));
    expect(settings.agents[0]?.schedule?.workUnit).toBe('{agent}-{date}T{time}-{firing}');
  });
});
