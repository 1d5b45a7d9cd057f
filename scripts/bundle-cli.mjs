// Part of `npm run build`, after tsc: writes dist/cli/agentd.cjs, the CLI entry bin/agentd runs.
//
// It is dist/cli/index.js with the quick path (plain `trigger`, `status`, `history`, `wait`, `show`,
// `cancel`, `logs`: quick.ts) in one
// CommonJS file. Every agentd command pays its start-up: as 30 ES modules (Node's ESM loader: an
// asynchronous resolve, read and link per file) a `trigger --quiet` took about 80 ms of CPU where
// `node -e 0` takes 30; as one CommonJS file about 50 (bench/findings.md, "The CLI's start-up").
// Everything else (clipanion and its commands, the daemon, a lost trigger's follow) stays where tsc put
// it and is loaded with import() when used, as from index.js; what those load is their own copy of any
// module the file holds too, so the file hands them arguments and takes plain results, never shared
// module state. The build fails when a module the quick path imports statically is also loaded with
// import() and left out of INLINED (it would be a require() of an ES module), or when the quick path
// imports a package statically.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rolldown } from 'rolldown';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');
const ENTRY = join(DIST, 'cli', 'index.js');
const OUT = join(DIST, 'cli', 'agentd.cjs');

/** The modules loaded with import() that are part of the file: the quick path (src/cli/quick.ts). */
const INLINED = new Set(
  [
    'quick.js',
    'trigger-run.js',
    'status-run.js',
    'history-run.js',
    'wait-run.js',
    'show-run.js',
    'cancel-run.js',
    'logs-run.js',
    'client-io.js',
  ].map((name) => join(DIST, 'cli', name)),
);

if (!existsSync(ENTRY)) throw new Error(`bundle-cli: ${relative(ROOT, ENTRY)} is missing: run tsc first`);

/** Dynamic imports outside INLINED stay import()s of the files tsc wrote. */
const externalDynamic = {
  name: 'agentd-external-dynamic',
  resolveId(source, importer, options) {
    if (source.startsWith('node:')) return { id: source, external: true };
    const relativeSource = source.startsWith('.');
    if (options.kind === 'dynamic-import') {
      if (!relativeSource) return { id: source, external: true };
      const target = resolve(dirname(importer), source);
      if (INLINED.has(target)) return null;
      return { id: target, external: true };
    }
    // A package imported statically would be inlined or required from CommonJS (zod, clipanion and
    // their like are ESM): the start of every command must not load one (test/unit/cli-start-imports).
    if (!relativeSource && importer !== undefined) {
      throw new Error(`bundle-cli: ${relative(ROOT, importer)} imports the package ${source} statically`);
    }
    return null;
  },
};

const bundle = await rolldown({
  input: ENTRY,
  platform: 'node',
  plugins: [externalDynamic],
  // import.meta.url of the modules in it (version.ts reads package.json by it): the file's own URL,
  // which sits where dist/cli/index.js does.
  transform: { define: { 'import.meta.url': '__agentdModuleUrl' } },
  logLevel: 'warn',
});
const { output } = await bundle.write({
  file: OUT,
  format: 'cjs',
  codeSplitting: false,
  intro: "const __agentdModuleUrl = require('node:url').pathToFileURL(__filename).href;",
  // Not minified, and no map: a stack trace (AGENTD_DEBUG) names agentd's own functions as they are.
  sourcemap: false,
});
await bundle.close();

const [chunk, ...rest] = output;
if (chunk?.type !== 'chunk' || rest.some((file) => file.type === 'chunk')) {
  throw new Error('bundle-cli: expected one file');
}
// A module loaded with import() from the quick path and statically too is external for both: a
// require() of an ES module, which Node 20 refuses. It belongs in INLINED.
const required = chunk.imports.filter((id) => !id.startsWith('node:'));
if (required.length > 0) {
  throw new Error(`bundle-cli: ${required.join(', ')} would be required from CommonJS: add it to INLINED`);
}
const inFile = new Set(chunk.moduleIds.map((id) => resolve(id)));
for (const id of chunk.dynamicImports) {
  const target = resolve(dirname(OUT), id);
  if (target !== OUT && inFile.has(target)) {
    throw new Error(`bundle-cli: ${relative(ROOT, target)} is both in the file and imported`);
  }
}
const text = readFileSync(OUT, 'utf8');
if (/\bimport\.meta\b/.test(text)) throw new Error('bundle-cli: import.meta left in a CommonJS file');
