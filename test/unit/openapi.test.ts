import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderOpenApi } from '../../src/http/openapi.js';
import { OPERATIONS } from '../../src/http/operations.js';
import { OPENAPI_FILE, REGENERATE_OPENAPI } from '../../src/tools/openapi.js';

describe('docs/openapi.json', () => {
  it('is what the operations generate', () => {
    let committed: string | undefined;
    try {
      committed = readFileSync(OPENAPI_FILE, 'utf8');
    } catch {
      committed = undefined;
    }
    if (committed !== renderOpenApi()) {
      expect.fail(
        `docs/openapi.json is ${committed === undefined ? 'missing' : 'out of date'}: the HTTP operations changed. Run \`${REGENERATE_OPENAPI}\` and commit the result.`,
      );
    }
  });

  it('names every operation once, each path and method once', () => {
    const keys = OPERATIONS.map((op) => `${op.method} ${op.path}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(new Set(OPERATIONS.map((op) => op.id)).size).toBe(OPERATIONS.length);
  });
});
