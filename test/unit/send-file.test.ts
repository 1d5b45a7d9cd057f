import { describe, expect, it } from 'vitest';
import { sourceProblem } from '../../src/cli/send.js';

const failure = (code: string) => Object.assign(new Error(`${code}: failed`), { code });

describe('agentd send: events that cannot be read', () => {
  it('names --file and the fix for a missing file or a directory', () => {
    expect(sourceProblem('/nope.ndjson', failure('ENOENT'))).toBe(
      '--file /nope.ndjson does not exist; give the path of an NDJSON file of events',
    );
    expect(sourceProblem('/tmp', failure('EISDIR'))).toBe(
      '--file /tmp is a directory; give the path of an NDJSON file of events',
    );
    expect(sourceProblem('/root/x', failure('EACCES'))).toBe(
      '--file /root/x: cannot read it (EACCES); check its owner and mode',
    );
  });

  it('says stdin when there is no --file (it said "cannot read undefined")', () => {
    expect(sourceProblem(undefined, failure('EIO'))).toBe('cannot read the events from stdin (EIO)');
  });
});
