import { describe, expect, it } from 'vitest';
import { StateDirError } from '../../src/adapters/state-files.js';
import { AgentdError, errorFields } from '../../src/errors.js';

describe('errorFields: an expected failure as log fields', () => {
  it('gives a full state dir its message and errno, and no stack', () => {
    const cause = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    const fields = errorFields(new StateDirError('write the record', '/var/lib/agentd/x.json', cause));
    expect(fields.code).toBe('ENOSPC');
    expect(fields.operation).toBe('write the record');
    expect(fields.reason).toMatch(
      /^state dir full: cannot write the record \(ENOSPC on \/var\/lib\/agentd\/x\.json\)/,
    );
    expect(JSON.stringify(fields)).not.toMatch(/\n\s+at /);
    expect(Object.keys(fields).sort()).toEqual(['code', 'operation', 'reason']);
  });

  it("gives agentd's own code, a system error's code, and what is not an error as text", () => {
    expect(errorFields(new AgentdError('PODMAN_FAILED', 'podman rm failed', { operation: 'rm' }))).toEqual({
      reason: 'podman rm failed',
      code: 'PODMAN_FAILED',
      operation: 'rm',
    });
    expect(errorFields(Object.assign(new Error('EROFS: read-only'), { code: 'EROFS' }))).toEqual({
      reason: 'EROFS: read-only',
      code: 'EROFS',
    });
    expect(errorFields('plain')).toEqual({ reason: 'plain' });
    expect(errorFields(undefined)).toEqual({ reason: 'undefined' });
  });
});
