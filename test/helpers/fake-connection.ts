import type { Connection } from '../../src/adapters/socket-server.js';

/**
 * A socket connection for handler tests: what is sent is kept (raw writes parsed line by line), and the
 * replies it is owed are counted as the socket server counts them. `overrides` replace any member
 * (e.g. a `lagging` getter or an `onDrain` that keeps its listeners).
 */
export function fakeConnection(overrides: Partial<Connection> = {}): {
  connection: Connection;
  sent: Record<string, unknown>[];
  owed: () => number;
} {
  const sent: Record<string, unknown>[] = [];
  let owed = 0;
  const base: Connection = {
    id: 1,
    send: (message) => {
      sent.push(message as Record<string, unknown>);
    },
    sendRaw: (data) => {
      for (const text of Buffer.from(data).toString().split('\n').filter(Boolean))
        sent.push(JSON.parse(text));
    },
    lagging: false,
    onDrain: () => () => {},
    owe: () => {
      owed++;
      let settled = false;
      return () => {
        if (!settled) owed--;
        settled = true;
      };
    },
    get owed() {
      return owed;
    },
    close: () => {},
    onClose: () => () => {},
    closed: false,
  };
  // Getters of `overrides` (lagging) stay getters.
  const connection = Object.defineProperties(base, Object.getOwnPropertyDescriptors(overrides)) as Connection;
  return { connection, sent, owed: () => owed };
}
