import { constants, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { AgentdError } from '../errors.js';

/** Far above any real configuration (the commented example is a few KiB), far below a memory problem. */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/**
 * The configuration file's text: a regular file of at most MAX_CONFIG_BYTES. Opened without waiting and
 * checked before reading, as credential files are: a FIFO nobody writes to would hang `validate`, `start`
 * and a reload for ever, and a device like /dev/zero would fill the memory. Errors of open(2) (ENOENT, ...)
 * are thrown as they are: the caller tells a missing file from an unreadable one.
 */
export async function readConfigFile(file: string): Promise<string> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stat = await handle.stat();
    if (stat.isDirectory()) {
      throw configFileError(
        `the configuration path ${file} is a directory; point at the agentd.yaml file inside it`,
      );
    }
    if (!stat.isFile()) {
      throw configFileError(
        `the configuration path ${file} is ${kindOf(stat)}, not a regular file; point at the agentd.yaml file itself`,
      );
    }
    if (stat.size > MAX_CONFIG_BYTES) throw tooLarge(file, `is ${stat.size} bytes`);
    // Counted as it is read, whatever the size said: the file may grow meanwhile.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(64 * 1024);
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > MAX_CONFIG_BYTES) throw tooLarge(file, 'grew past that size while it was read');
      chunks.push(chunk.subarray(0, bytesRead));
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } finally {
    await handle.close();
  }
}

function tooLarge(file: string, what: string): AgentdError {
  return configFileError(
    `the configuration file ${file} ${what}; a configuration file is at most ${MAX_CONFIG_BYTES / (1024 * 1024)} MiB: is it the right file?`,
  );
}

function configFileError(message: string): AgentdError {
  return new AgentdError('CONFIG_NOT_FOUND', message, { operation: 'read configuration' });
}

function kindOf(stat: Stats): string {
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isSocket()) return 'a socket';
  return 'an unknown kind of file';
}
