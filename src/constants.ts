/** Label and name conventions that mark Podman objects as owned by one agentd instance. */
export const LABEL_INSTANCE = 'io.agentd.instance';
export const LABEL_SESSION = 'io.agentd.session';
export const LABEL_AGENT = 'io.agentd.agent';
/** Marks a cache volume (`caches:`) with its name; reconciliation never removes these. */
export const LABEL_CACHE = 'io.agentd.cache';
/** The configured host (`hosts:`) the object was made on. */
export const LABEL_HOST = 'io.agentd.host';
/** On a session's container: how many secrets it was given (an adopted one given none has no values to read back). */
export const LABEL_SECRETS = 'io.agentd.secrets';
/** Every container and secret agentd creates starts with this prefix. */
export const NAME_PREFIX = 'agentd-';
/** Where secret files are mounted inside the session container (root-only, mode 0400). */
export const SECRET_MOUNT_DIR = '/run/secrets/agentd';
/** Protocol versions the daemon speaks on its socket (docs/protocol.md), oldest first. */
export const PROTOCOL_VERSIONS = [1, 2] as const;
export type ProtocolVersion = (typeof PROTOCOL_VERSIONS)[number];

/**
 * What a client's shutdown asks for (the `mode` of the `shutdown` event), which the daemon machine decides in
 * one step: `graceful` (`agentd stop`) drains and never cancels, `force` (`--force`) cancels what runs.
 */
export const SHUTDOWN_MODES = ['graceful', 'force'] as const;
export type ShutdownMode = (typeof SHUTDOWN_MODES)[number];
/** The newest version: what the CLI speaks, and what the daemon answers in when a request names none. */
export const PROTOCOL_VERSION = 2 satisfies ProtocolVersion;
/** Longest request line the socket accepts: room for a trigger's request and input files, base64-encoded. */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;
/** Bytes of unfinished request lines the socket holds for all clients together. */
export const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;
/** Largest request text (`--request`, `--request-file`) a trigger may carry. */
export const MAX_REQUEST_BYTES = 1024 * 1024;
/** Largest total of the input files (`--input`) one trigger may carry. */
export const MAX_INPUT_BYTES = 8 * 1024 * 1024;
/** Most input files one trigger may carry. */
export const MAX_INPUT_FILES = 64;
/** An input's name: its file name under /agentd/input. */
export const INPUT_NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** Podman refuses secrets of 512,000 bytes or more. */
export const MAX_SECRET_BYTES = 511_999;
/** A session id: 16 lowercase hex characters, chosen by the daemon (or a script's `send`). */
export const SESSION_ID_PATTERN = /^[0-9a-f]{16}$/;
/** An idempotency key: what webhooks and queues send as delivery ids (UUIDs, `gh-123`, `a/b:c`). */
export const IDEMPOTENCY_KEY_PATTERN = /^[!-~]{1,128}$/;
export const IDEMPOTENCY_KEY_RULE = 'a key is 1 to 128 visible ASCII characters (no spaces)';
/** Longest line of a session's output; a longer line goes on in further lines marked as continuations. */
export const OUTPUT_LINE_MAX_BYTES = 64 * 1024;
/** Podman's own log of a session container (`--log-opt max-size`): conmon empties it when it is full. */
export const CONTAINER_LOG_MAX_BYTES = 4 * 1024 * 1024;
/** A client with more unread than this lags: a follower skips output (and gets a marker) until it catches up. */
export const CLIENT_LAG_BYTES = 64 * 1024;
/** A client that lags this long without reading what was queued is closed, at a message boundary. */
export const CLIENT_STALL_MS = 30_000;
/** ... and its socket destroyed this long after that, if it still has not read what was left for it. */
export const CLIENT_LINGER_MS = 60_000;
/** A socket connection owed nothing and sending nothing is closed after this long (a leaked client frees its slot). */
export const CLIENT_IDLE_MS = 60_000;
/** Longest work unit (`--work-unit`, a schedule's expanded template). */
export const WORK_UNIT_MAX = 256;
/** Longest agent name. */
export const AGENT_NAME_MAX = 32;
/** An agent's name (config/schema.ts says it in words): also a directory of records_dir. */
export const AGENT_NAME_PATTERN = /^[a-z_][a-z0-9_-]*$/;
/**
 * The uid of the agent's user, made by the setup step (unless the image has a user of the agent's name).
 * On a rootful Podman without a user namespace it is this machine's uid too: the image's first free uid
 * (1000) is usually the host's first person, whose processes could read the agents' environments (their
 * credentials) in /proc and trace them. 61000 is outside what Debian and most distributions give people
 * (up to 60000) and systemd's dynamic users (61184-65519), and under 65536, which a rootless Podman's
 * default user namespace maps.
 */
export const AGENT_UID = 61000;
/**
 * Where root steps inside a session container (the setup step, reading an adopted container's
 * secrets) find their tools: the system's directories, none of which may be a cache or a mount.
 * /usr/local last: an image may hand it to the agent's user (for global npm or pip installs), and root
 * runs tools after the command (archiving the output); only what the system lacks (gosu) comes from it.
 */
export const SYSTEM_PATH = '/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/sbin:/usr/local/bin';

/** Podman's states of a container whose process runs (or is about to stop): anything else is dead. */
export const LIVE_CONTAINER_STATES: ReadonlySet<string> = new Set(['running', 'paused', 'stopping']);
/**
 * Podman's states of a container that has not run: never started, or started and then reset by its
 * host's restart (Podman 4 makes every container that had not exited `configured` again at its next
 * start, listed `created`, with exit code 0, which is not the command's).
 */
export const NEVER_STARTED_STATES: ReadonlySet<string> = new Set(['created', 'configured', 'initialized']);

/**
 * The longest wait between two attempts of a notification: the delivery machine's doubling backoff
 * stops there, and a webhook's `backoff` may be at most this.
 */
export const NOTIFY_BACKOFF_MAX_MS = 5 * 60_000;
