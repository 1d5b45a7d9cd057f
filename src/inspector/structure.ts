import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';

/** One state of a chart, as the inspector page draws it. */
export interface StateJson {
  key: string;
  /** Dot path from the root ('' for the root itself), e.g. 'shutdown.draining'. */
  path: string;
  type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  /** Key of the initial child of a compound state. */
  initial?: string;
  description?: string;
  /** Sources of the actors this state invokes. */
  invokes: string[];
  states: StateJson[];
}

export interface TransitionJson {
  /** Dot path of the state that handles the event. */
  source: string;
  /** Dot paths of the targets; empty for a transition that only runs actions. */
  targets: string[];
  /** The event as a reader knows it: `trigger`, `done: reconcile`, `always`, `after 5s`. */
  event: string;
  guard?: string;
  actions: string[];
}

export interface MachineJson {
  id: string;
  root: StateJson;
  transitions: TransitionJson[];
}

/** The static structure of a machine, from its StateNodes (no context, nothing from a running actor). */
export function machineStructure(machine: AnyStateMachine): MachineJson {
  const transitions: TransitionJson[] = [];
  const walk = (node: AnyStateNode): StateJson => {
    const invokeSources = new Map<string, string>();
    for (const invoke of node.invoke) invokeSources.set(invoke.id, srcName(invoke.src));
    for (const [eventType, list] of node.transitions) {
      for (const t of list) transitions.push(transitionJson(t, eventLabel(eventType, invokeSources)));
    }
    for (const t of node.always ?? []) transitions.push(transitionJson(t, 'always'));
    const children = Object.values(node.states).map(walk);
    const initial = node.type === 'compound' ? node.initial.target[0]?.key : undefined;
    return {
      key: node.key,
      path: dotPath(node),
      type: node.type,
      ...(initial === undefined ? {} : { initial }),
      ...(node.description === undefined ? {} : { description: node.description }),
      invokes: [...invokeSources.values()],
      states: children,
    };
  };
  const root = walk(machine.root);
  return { id: machine.id, root, transitions };
}

function dotPath(node: AnyStateNode): string {
  return node.path.join('.');
}

function transitionJson(t: AnyTransitionDefinition, event: string): TransitionJson {
  const guard = nameOf(t.guard);
  return {
    source: dotPath(t.source),
    targets: (t.target ?? []).map(dotPath),
    event,
    ...(guard === undefined ? {} : { guard }),
    actions: t.actions.map(nameOf).filter((name): name is string => name !== undefined),
  };
}

/** Invocation events carry generated actor ids (`xstate.done.actor.0.daemon.reconciling`): name the source instead. */
function eventLabel(eventType: string, invokeSources: Map<string, string>): string {
  for (const [prefix, label] of [
    ['xstate.done.actor.', 'done'],
    ['xstate.error.actor.', 'error'],
  ] as const) {
    if (eventType.startsWith(prefix)) {
      const id = eventType.slice(prefix.length);
      return `${label}: ${invokeSources.get(id) ?? id}`;
    }
  }
  const after = /^xstate\.after\.([^.]+)\./.exec(eventType);
  if (after) return `after ${after[1]}`;
  return eventType;
}

function srcName(src: unknown): string {
  return typeof src === 'string' ? src : (nameOf(src) ?? 'inline');
}

/** Names of guards and actions: `'name'`, `{ type: 'name', params }` or a (built-in) function. */
function nameOf(item: unknown): string | undefined {
  if (item === undefined || item === null) return undefined;
  if (typeof item === 'string') return item;
  if (typeof item === 'object' && 'type' in item && typeof item.type === 'string') return item.type;
  if (typeof item === 'function') {
    // Built-in actions (assign, emit, sendParent...) carry their kind in `type`; user functions a name.
    const typed = (item as { type?: unknown }).type;
    if (typeof typed === 'string') return typed;
    return item.name || 'inline';
  }
  return undefined;
}
