import { createServer } from 'node:net';
import { join } from 'node:path';
import { makeTempDir, track } from './resources.js';

/**
 * A daemon on a Unix socket that answers every request line with `reply`, its id added: an object (sent
 * as JSON), or a function of the request's type giving the raw line(s) to send (for JSON that
 * JSON.stringify cannot make, such as `1e999`, or another answer per request). Closed at the test
 * file's cleanup.
 */
export async function fakeDaemon(
  reply: object | ((type: string, id: string | undefined) => string),
): Promise<string> {
  const path = join(makeTempDir('agentd-unit-fake-daemon-'), 'agentd.sock');
  const server = createServer((socket) => {
    socket.on('error', () => {});
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
        const { id, type } = JSON.parse(buffered.slice(0, nl)) as { id?: string; type: string };
        buffered = buffered.slice(nl + 1);
        const line =
          typeof reply === 'function'
            ? reply(type, id)
            : JSON.stringify({ ...reply, ...(id === undefined ? {} : { id }) });
        socket.write(`${line}\n`);
      }
    });
  });
  track.onCleanup(() => new Promise((resolve) => server.close(resolve)));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return path;
}
