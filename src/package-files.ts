import { fileURLToPath } from 'node:url';

/**
 * The absolute path of a file shipped with agentd (see `files` in package.json), from a checkout or an
 * installed package alike, so a message can point at it wherever agentd was installed.
 */
export function packageFile(relative: string): string {
  // This module is src/package-files.ts or dist/package-files.js: one level below the package root.
  return fileURLToPath(new URL(`../${relative}`, import.meta.url));
}
