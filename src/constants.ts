/** Label and name conventions that mark Podman objects as owned by one agentd instance. */
export const LABEL_INSTANCE = 'io.agentd.instance';
export const LABEL_SESSION = 'io.agentd.session';
export const LABEL_AGENT = 'io.agentd.agent';
/** Every container and secret agentd creates starts with this prefix. */
export const NAME_PREFIX = 'agentd-';
/** Where secret files are mounted inside the session container (root-only, mode 0400). */
export const SECRET_MOUNT_DIR = '/run/secrets/agentd';
/** Protocol version spoken on the Unix socket. */
export const PROTOCOL_VERSION = 1;
/** Longest request line the socket accepts. */
export const MAX_LINE_BYTES = 1024 * 1024;
/** Podman refuses secrets of 512,000 bytes or more. */
export const MAX_SECRET_BYTES = 511_999;
/** A session id: 16 lowercase hex characters, chosen by the daemon (or a script's `send`). */
export const SESSION_ID_PATTERN = /^[0-9a-f]{16}$/;
