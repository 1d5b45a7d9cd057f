import type { AnyStateNode, AnyTransitionDefinition, UnknownAction } from 'xstate';

/**
 * Reading a machine's definition for people: the names of its states, events, guards and actions as
 * the statechart docs (src/tools/statecharts.ts) and the live inspector (src/inspector) show them. Pure: no actor runs.
 */

/** `shutdown.draining` for daemon.shutdown.draining. */
export function statePath(node: AnyStateNode): string {
  return node.path.join('.');
}

export type InvokeIndex = Map<string, string>;

/** Invoke id → the name shown for it: the actor source, which is what the daemon provides. */
export function invokeIndex(nodes: readonly AnyStateNode[]): InvokeIndex {
  const index: InvokeIndex = new Map();
  for (const node of nodes) {
    for (const invoke of node.invoke)
      index.set(invoke.id, typeof invoke.src === 'string' ? invoke.src : invoke.id);
  }
  return index;
}

/** `trigger`, `always`, `done: reconcile`, `error: runner`, `after 5000`. */
export function eventLabel(transition: AnyTransitionDefinition, invokes: InvokeIndex): string {
  const type = String(transition.eventType);
  if (type === '') return 'always';
  if ('delay' in transition) return `after ${String(transition.delay)}`;
  for (const [prefix, word] of [
    ['xstate.done.actor.', 'done'],
    ['xstate.error.actor.', 'error'],
  ] as const) {
    if (type.startsWith(prefix)) {
      const id = type.slice(prefix.length);
      return `${word}: ${invokes.get(id) ?? id}`;
    }
  }
  if (type.startsWith('xstate.done.state.')) return 'done';
  return type;
}

/** The name of a guard: its type, or a readable form of `and`/`or`/`not` and inline functions. */
export function guardName(guard: unknown): string | undefined {
  if (guard === undefined) return undefined;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const composite = guard as { name?: string; guards?: unknown[] };
    if (Array.isArray(composite.guards)) {
      return `${composite.name || 'guard'}(${composite.guards.map(guardName).join(', ')})`;
    }
    return composite.name || 'inline';
  }
  if (typeof guard === 'object' && guard !== null && 'type' in guard) return String(guard.type);
  return 'inline';
}

/** An action's name, with its parameters when they are static values (e.g. `setPhase("resolving")`). */
export function actionName(action: UnknownAction): string {
  if (typeof action === 'string') return action;
  if (typeof action === 'function') {
    const fn = action as { type?: string; name?: string };
    return fn.type ?? (fn.name || 'inline');
  }
  const { type, params } = action as { type: string; params?: unknown };
  if (params === undefined || typeof params === 'function') return type;
  return `${type}(${JSON.stringify(params)})`;
}
