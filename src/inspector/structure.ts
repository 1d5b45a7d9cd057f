import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';
import { actionName, eventLabel, guardName, invokeIndex, statePath } from '../machines/introspect.js';

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
    const invokes = invokeIndex([node]);
    for (const list of node.transitions.values()) {
      for (const t of list) transitions.push(transitionJson(t, eventLabel(t, invokes)));
    }
    for (const t of node.always ?? []) transitions.push(transitionJson(t, 'always'));
    const children = Object.values(node.states).map(walk);
    const initial = node.type === 'compound' ? node.initial.target[0]?.key : undefined;
    return {
      key: node.key,
      path: statePath(node),
      type: node.type,
      ...(initial === undefined ? {} : { initial }),
      ...(node.description === undefined ? {} : { description: node.description }),
      invokes: [...invokes.values()],
      states: children,
    };
  };
  const root = walk(machine.root);
  return { id: machine.id, root, transitions };
}

function transitionJson(t: AnyTransitionDefinition, event: string): TransitionJson {
  const guard = guardName(t.guard);
  return {
    source: statePath(t.source),
    targets: (t.target ?? []).map(statePath),
    event,
    ...(guard === undefined ? {} : { guard }),
    actions: t.actions.map(actionName),
  };
}
