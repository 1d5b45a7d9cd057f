/**
 * The thread of one reload (see reload-thread.ts): reads and validates the file it is given and posts
 * the answer back as plain data. Nothing else runs here; the thread ends once it has answered.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadConfig } from '../config/load.js';
import { loadForReload, type ReloadJob } from './reload-thread.js';
import { collectGarbage } from './young-generation.js';

// The thread's heap is collected once the YAML's tokens are garbage (see collectGarbage).
parentPort?.postMessage(
  await loadForReload(workerData as ReloadJob, (file) => loadConfig({ flag: file, collect: collectGarbage })),
);
