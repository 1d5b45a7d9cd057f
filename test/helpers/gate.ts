import { createServer, type Socket } from 'node:net';

/**
 * A TCP server on 127.0.0.1 that session commands block on until the test opens it: the command
 * `git ls-remote git://127.0.0.1:PORT/gate` connects and waits for an answer that never comes, so
 * "both sessions run their command now" is an observed fact (two connections), not a sleep.
 */
export interface Gate {
  port: number;
  /** Shell command for an agent: prints `waiting`, blocks until the gate opens, prints `released`. */
  command: string[];
  /** Connections since the last hold(). */
  readonly connections: number;
  /** Resolves once n commands wait at the gate; rejects after timeoutMs. */
  waitFor(n: number, timeoutMs?: number): Promise<void>;
  /** Lets every waiting command go, and every later one through at once. */
  open(): void;
  /** Closes the gate again for the next test and resets the count. */
  hold(): void;
  close(): Promise<void>;
}

export async function startGate(): Promise<Gate> {
  const sockets = new Set<Socket>();
  let open = false;
  let connections = 0;
  const waiters = new Set<() => void>();
  const server = createServer((socket) => {
    connections++;
    socket.on('error', () => {});
    if (open) {
      socket.destroy();
    } else {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    }
    for (const check of [...waiters]) check();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    command: [
      'sh',
      '-c',
      `echo waiting; git ls-remote git://127.0.0.1:${port}/gate.git >/dev/null 2>&1; echo released`,
    ],
    get connections() {
      return connections;
    },
    waitFor: (n, timeoutMs = 60_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (connections < n) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${connections} of ${n} commands reached the gate within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
    open: () => {
      open = true;
      for (const socket of sockets) socket.destroy();
    },
    hold: () => {
      open = false;
      connections = 0;
    },
    close: async () => {
      open = true;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
