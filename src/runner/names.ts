import { cacheVolumeKey } from '../config/mounts.js';
import {
  LABEL_AGENT,
  LABEL_CACHE,
  LABEL_HOST,
  LABEL_INSTANCE,
  LABEL_SESSION,
  NAME_PREFIX,
} from '../constants.js';

/** Podman object names: every one can be traced back to its daemon instance and session. */
export function containerName(instanceId: string, agent: string, sessionId: string): string {
  return `${NAME_PREFIX}${instanceId.slice(0, 8)}-${agent}-${sessionId.slice(0, 16)}`;
}

export function secretName(instanceId: string, sessionId: string, index: number): string {
  return `${NAME_PREFIX}${instanceId.slice(0, 8)}-${sessionId.slice(0, 16)}-${index}`;
}

/** The index secretName gave a secret (the chunk of the bundle it holds), if it is one of its names. */
export function indexOfSecret(name: string): number | undefined {
  const match = /^.+-[0-9a-f]{16}-(\d{1,6})$/.exec(name);
  return match ? Number(match[1]) : undefined;
}

/** Prefix shared by every secret of one instance. */
export function instanceSecretPrefix(instanceId: string): string {
  return `${NAME_PREFIX}${instanceId.slice(0, 8)}-`;
}

/** Session id embedded in a secret name made by secretName, if it is one. */
export function sessionOfSecret(instanceId: string, name: string): string | undefined {
  const prefix = instanceSecretPrefix(instanceId);
  if (!name.startsWith(prefix)) return undefined;
  const match = /^([0-9a-f]{16})-\d+$/.exec(name.slice(prefix.length));
  return match?.[1];
}

/** The volume of an agent's cache: one per instance, agent and cache name, kept between sessions. */
export function cacheVolumeName(instanceId: string, agent: string, cache: string): string {
  return `${NAME_PREFIX}${instanceId.slice(0, 8)}-cache-${cacheVolumeKey(agent, cache)}`;
}

export function cacheLabels(instanceId: string, agent: string, cache: string): Record<string, string> {
  return { [LABEL_INSTANCE]: instanceId, [LABEL_AGENT]: agent, [LABEL_CACHE]: cache };
}

/** The labels of a session's objects: its instance, session, agent and, when placed on one, its host. */
export function ownershipLabels(
  instanceId: string,
  sessionId: string,
  agent: string,
  host?: string,
): Record<string, string> {
  return {
    [LABEL_INSTANCE]: instanceId,
    [LABEL_SESSION]: sessionId,
    [LABEL_AGENT]: agent,
    ...(host === undefined ? {} : { [LABEL_HOST]: host }),
  };
}
