/**
 * Writes docs/openapi.json from the HTTP API's operations (`npm run build && npm run openapi`).
 * test/unit/openapi.test.ts fails when the committed file differs from what the code generates.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { renderOpenApi } from '../http/openapi.js';

export const OPENAPI_FILE = fileURLToPath(new URL('../../docs/openapi.json', import.meta.url));
export const REGENERATE_OPENAPI = 'npm run build && npm run openapi';

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(OPENAPI_FILE, renderOpenApi());
  process.stdout.write(`wrote ${OPENAPI_FILE}\n`);
}
