/**
 * Numbers of the protocol that the daemon and its clients both go by. No zod here: the CLI imports this
 * module, and loading zod costs it 40 ms a call.
 */

/**
 * How often the daemon sends a `heartbeat` on a stream whose request asked for one (`wait`, `logs` with
 * `follow`, `trigger` with `follow`): a session may print nothing for hours, and a client must be able to
 * tell that from a daemon that hangs (stopped, or its event loop stuck) without a reply for ever.
 */
export const HEARTBEAT_MS = 15_000;

/** Heartbeats a client may miss before it takes the daemon for hung: one late timer is no reason. */
export const HEARTBEATS_MISSED = 3;

/**
 * The longest reply line a client reads: beyond it, what comes is not a reply of agentd's (something
 * else on the socket), and holding it would grow the client without end. Well above the largest the daemon
 * builds: `status` with 10,000 queued sessions, each with a 2 KiB repository URL and a 256-character work
 * unit, is some 25 MB; an `output` line of 64 KiB of control characters some 400 KB.
 */
export const MAX_REPLY_LINE_BYTES = 64 * 1024 * 1024;
