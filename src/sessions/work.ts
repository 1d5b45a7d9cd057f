import { createHash } from 'node:crypto';
import { INPUT_NAME_PATTERN, MAX_INPUT_BYTES, MAX_INPUT_FILES, MAX_REQUEST_BYTES } from '../constants.js';

/**
 * What a trigger hands the agent besides the repository: a request text and input files. They travel
 * to the daemon by content (so a client needs no path the daemon can read), are kept in the session's
 * work directory while it runs, and reach the container as read-only files. Records keep their digests.
 */

/** A file's size and SHA-256, hex. */
export interface FileDigest {
  bytes: number;
  sha256: string;
}

/** What a session was handed, by digest. */
export interface WorkManifest {
  request?: FileDigest;
  inputs: (FileDigest & { name: string })[];
}

/** The content itself, between the client and the work directory. */
export interface WorkPayload {
  request?: Buffer;
  inputs: { name: string; bytes: Buffer }[];
}

export function digestOf(bytes: Uint8Array): FileDigest {
  return { bytes: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') };
}

export function manifestOf(payload: WorkPayload): WorkManifest {
  return {
    ...(payload.request === undefined ? {} : { request: digestOf(payload.request) }),
    inputs: payload.inputs.map((input) => ({ name: input.name, ...digestOf(input.bytes) })),
  };
}

/** Why an input name cannot be a file name under /agentd/input, or undefined. */
export function inputNameProblem(name: string): string | undefined {
  if (!INPUT_NAME_PATTERN.test(name) || name === '.' || name === '..') {
    return `input name ${JSON.stringify(name)} is not a file name; use letters, digits, _, . and - (at most 128, not starting with . or -)`;
  }
  return undefined;
}

/** Why a payload is too large or badly named, or undefined. The limits are documented in the README. */
export function payloadProblem(payload: WorkPayload): string | undefined {
  if (payload.request !== undefined && payload.request.byteLength > MAX_REQUEST_BYTES) {
    return `the request is ${payload.request.byteLength} bytes; the limit is ${MAX_REQUEST_BYTES} bytes (1 MiB): hand larger material over as an input file`;
  }
  if (payload.inputs.length > MAX_INPUT_FILES) {
    return `${payload.inputs.length} input files; the limit is ${MAX_INPUT_FILES}: pack them into an archive`;
  }
  const seen = new Set<string>();
  let total = 0;
  for (const input of payload.inputs) {
    const problem = inputNameProblem(input.name);
    if (problem !== undefined) return problem;
    if (seen.has(input.name))
      return `input ${JSON.stringify(input.name)} is given twice; name each input once`;
    seen.add(input.name);
    total += input.bytes.byteLength;
  }
  if (total > MAX_INPUT_BYTES) {
    return `the input files take ${total} bytes; the limit is ${MAX_INPUT_BYTES} bytes (8 MiB) per trigger: mount large material with the agent's mounts: instead`;
  }
  return undefined;
}

/** Strict base64 (what the protocol carries) to bytes; undefined when it is not base64. */
export function decodeBase64(text: string): Buffer | undefined {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  return Buffer.from(text, 'base64');
}
