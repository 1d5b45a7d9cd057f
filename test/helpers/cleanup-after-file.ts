import { afterAll } from 'vitest';
import { cleanupAll } from './resources.js';

// A setup file of every project: whatever a test file tracked (temp dirs, containers, secrets,
// processes) is removed when the file ends, even if the file never calls cleanupAll itself.
// Registered first, this afterAll runs after the file's own (vitest runs after-hooks as a stack);
// cleanupAll forgets what it removed, so a file that already cleaned up costs nothing here.
afterAll(cleanupAll);
