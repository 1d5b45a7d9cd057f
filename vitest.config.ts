import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // clipanion's `main` has no extension; Vite would pick its broken .mjs build, Node picks the .js one.
    alias: { clipanion: require.resolve('clipanion') },
  },
  test: {
    // Real Podman on a 2-core machine: e2e tests take seconds each and must not starve each other.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/report.json' },
    // Every project: the run's own TMPDIR, checked empty at the end; each file's tracked resources removed.
    globalSetup: ['test/helpers/temp-root.ts'],
    setupFiles: ['test/helpers/cleanup-after-file.ts'],
    projects: [
      {
        extends: true,
        // Fakes only: no Podman, no build, a few seconds.
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'podman',
          include: ['test/e2e/**/*.test.ts', 'test/reliability/**/*.test.ts'],
          // Builds dist/ and checks that Podman runs the test image; only these suites need either.
          globalSetup: ['test/helpers/temp-root.ts', 'test/helpers/global-setup.ts'],
        },
      },
    ],
  },
});
