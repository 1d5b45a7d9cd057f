import { isUtf8 } from 'node:buffer';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { AgentdError } from '../errors.js';
import { kindOf } from '../file-kind.js';

/** Far above any real configuration (the commented example is a few KiB), far below a memory problem. */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/**
 * The configuration file's text: a regular file of at most MAX_CONFIG_BYTES. Opened without waiting and
 * checked before reading, as credential files are: a FIFO nobody writes to would hang `validate`, `start`
 * and a reload for ever, and a device like /dev/zero would fill the memory. Errors of open(2) (ENOENT, ...)
 * are thrown as they are: the caller tells a missing file from an unreadable one.
 */
export function readConfigFile(file: string): Promise<string> {
  return readSmallFile(file, {
    path: 'the configuration path',
    file: 'the configuration file',
    kind: 'a configuration file',
    inDirectory: 'point at the agentd.yaml file inside it',
    notRegular: 'point at the agentd.yaml file itself',
    encoding:
      'save it as UTF-8 (e.g. iconv -f latin1 -t utf-8), or write the character as an escape in double quotes ("\\u00e9")',
  });
}

/** An environment file (`doctor --env-file`), read with the same bounds as the configuration. */
export function readEnvFile(file: string): Promise<string> {
  return readSmallFile(file, {
    path: 'the --env-file path',
    file: 'the --env-file',
    kind: 'an environment file',
    inDirectory: 'point at the environment file inside it',
    notRegular: 'point at the environment file itself',
    encoding: 'save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)',
  });
}

/** How a small file's problems are told: what it is, and the fix. */
interface SmallFileWords {
  path: string;
  file: string;
  kind: string;
  inDirectory: string;
  notRegular: string;
  encoding: string;
}

async function readSmallFile(file: string, words: SmallFileWords): Promise<string> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stat = await handle.stat();
    if (stat.isDirectory()) {
      throw configFileError(`${words.path} ${file} is a directory; ${words.inDirectory}`);
    }
    if (!stat.isFile()) {
      throw configFileError(
        `${words.path} ${file} is ${kindOf(stat)}, not a regular file; ${words.notRegular}`,
      );
    }
    if (stat.size > MAX_CONFIG_BYTES) throw tooLarge(words, file, `is ${stat.size} bytes`);
    // Counted as it is read, whatever the size said: the file may grow meanwhile.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(64 * 1024);
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > MAX_CONFIG_BYTES) throw tooLarge(words, file, 'grew past that size while it was read');
      chunks.push(chunk.subarray(0, bytesRead));
    }
    const bytes = Buffer.concat(chunks, total);
    const text = bytes.toString('utf8');
    // Bytes that are not UTF-8 (a file saved as Latin-1: "caf\xe9") would be read as U+FFFD, and an env
    // value or a path changed without a word.
    if (!isUtf8(bytes)) {
      const { line, column } = firstInvalid(text, bytes);
      throw configFileError(
        `${words.file} ${file} is not UTF-8 text: line ${line}, column ${column} has a byte that is not; ${words.encoding}`,
      );
    }
    return text;
  } finally {
    await handle.close();
  }
}

/** Where the first byte that is not UTF-8 is: the first U+FFFD of the text that the bytes do not spell. */
function firstInvalid(text: string, bytes: Buffer): { line: number; column: number } {
  let offset = 0;
  let line = 1;
  let column = 1;
  for (const char of text) {
    if (
      char === '\ufffd' &&
      !(bytes[offset] === 0xef && bytes[offset + 1] === 0xbf && bytes[offset + 2] === 0xbd)
    ) {
      break;
    }
    offset += Buffer.byteLength(char);
    if (char === '\n') {
      line += 1;
      column = 1;
    } else column += 1;
  }
  return { line, column };
}

function tooLarge(words: SmallFileWords, file: string, how: string): AgentdError {
  return configFileError(
    `${words.file} ${file} ${how}; ${words.kind} is at most ${MAX_CONFIG_BYTES / (1024 * 1024)} MiB: is it the right file?`,
  );
}

function configFileError(message: string): AgentdError {
  return new AgentdError('CONFIG_NOT_FOUND', message, { operation: 'read configuration' });
}
