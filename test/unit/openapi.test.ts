import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderOpenApi } from '../../src/http/openapi.js';
import { OPERATIONS } from '../../src/http/operations.js';
import { DAEMON_STATES } from '../../src/protocol/public-state.js';
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

  it('gives the daemon state of /readyz and /v1/shutdown as the states a client can see, not any string', () => {
    const doc = JSON.parse(renderOpenApi()) as {
      paths: Record<
        string,
        Record<
          string,
          {
            responses: Record<
              string,
              { content?: Record<string, { schema: { properties: Record<string, { enum?: string[] }> } }> }
            >;
          }
        >
      >;
    };
    const stateOf = (path: string, method: string, status: string) =>
      doc.paths[path]?.[method]?.responses[status]?.content?.['application/json']?.schema.properties.state
        ?.enum;
    expect(stateOf('/readyz', 'get', '200')).toEqual([...DAEMON_STATES]);
    expect(stateOf('/readyz', 'get', '503')).toEqual([...DAEMON_STATES]);
    expect(stateOf('/v1/shutdown', 'post', '202')).toEqual([...DAEMON_STATES]);
  });
});
