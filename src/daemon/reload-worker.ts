/**
 * The thread of one reload (see reload-thread.ts): reads and validates the file it is given and posts
 * the answer back as plain data. Nothing else runs here; the thread ends once it has answered.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadForReload, type ReloadJob } from './reload-thread.js';

parentPort?.postMessage(await loadForReload(workerData as ReloadJob));
