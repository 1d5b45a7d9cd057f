import type { ActorRefLike, AnyStateMachine, InspectionEvent, StateValue } from 'xstate';

export type MachineKind = 'daemon' | 'session' | 'runner';

/**
 * What the page learns about an actor. Deliberately narrow: contexts and event payloads hold
 * credentials and assembled sessions, so only state values, statuses, event types and ids leave.
 */
export interface SnapshotMessage {
  kind: 'snapshot';
  /** XState's system-wide id of the actor (`x:3`). */
  actorId: string;
  machine: MachineKind;
  /** The agentd session id (sessions and their runners). */
  sessionId?: string;
  value: StateValue;
  status: string;
  at: number;
}

export interface EventMessage {
  kind: 'event';
  /** The actor that received the event. */
  actorId: string;
  machine: MachineKind;
  sessionId?: string;
  /** The event type only, never its payload. */
  event: string;
  /** `daemon`, a session id, an invoked actor's id (`runner`), or null for events from outside (the socket). */
  source: string | null;
  at: number;
}

/** Sent first on every connection: the page drops what it showed and rebuilds from the replay. */
export interface ResetMessage {
  kind: 'reset';
}

export type InspectorMessage = ResetMessage | SnapshotMessage | EventMessage;

interface Identity {
  machine: MachineKind;
  sessionId?: string;
}

export interface HubOptions {
  machines: Record<MachineKind, AnyStateMachine>;
  /** Finished sessions still replayed to new pages. */
  finishedKept?: number;
  /** Recent events replayed to new pages. */
  eventsKept?: number;
}

const MAX_EVENT_TYPE = 200;

/**
 * Turns XState inspection events into inspector messages, remembers the current state of every
 * actor for replay, and fans messages out to listeners (the SSE connections).
 */
export class InspectorHub {
  private readonly kinds = new Map<string, MachineKind>();
  private readonly identities = new WeakMap<ActorRefLike, Identity | null>();
  /** Latest snapshot per actor, in order of appearance. */
  private readonly actors = new Map<string, SnapshotMessage>();
  private readonly events: EventMessage[] = [];
  private readonly listeners = new Set<(message: InspectorMessage) => void>();
  private readonly finishedKept: number;
  private readonly eventsKept: number;

  constructor(options: HubOptions) {
    for (const [kind, machine] of Object.entries(options.machines) as [MachineKind, AnyStateMachine][]) {
      this.kinds.set(machine.id, kind);
    }
    this.finishedKept = options.finishedKept ?? 20;
    this.eventsKept = options.eventsKept ?? 100;
  }

  /** The XState inspection observer; pass it as `createActor(machine, { inspect })`. */
  readonly inspect = (event: InspectionEvent): void => {
    // XState calls observers inside the actor's own processing: a throw here would break the daemon.
    try {
      if (event.type === '@xstate.snapshot') this.onSnapshot(event.actorRef, event.snapshot);
      else if (event.type === '@xstate.event')
        this.onEvent(event.actorRef, event.sourceRef, event.event.type);
    } catch {
      // The inspector is a development aid; losing one message is better than disturbing the daemon.
    }
  };

  /** What a new connection needs to show the present: a reset, recent events, then every actor's state. */
  replay(): InspectorMessage[] {
    return [{ kind: 'reset' }, ...this.events, ...this.actors.values()];
  }

  subscribe(listener: (message: InspectorMessage) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private onSnapshot(actorRef: ActorRefLike, snapshot: unknown): void {
    const identity = this.identify(actorRef, snapshot);
    if (!identity || !isMachineSnapshot(snapshot)) return;
    const message: SnapshotMessage = {
      kind: 'snapshot',
      actorId: actorRef.sessionId,
      ...identity,
      value: snapshot.value,
      status: snapshot.status,
      at: Date.now(),
    };
    // Map.set keeps a known key in place, so actors stay in order of appearance.
    this.actors.set(message.actorId, message);
    if (message.status !== 'active') this.forgetOldFinished();
    this.publish(message);
  }

  private onEvent(target: ActorRefLike, source: ActorRefLike | undefined, type: string): void {
    const identity = this.identify(target, target.getSnapshot());
    if (!identity) return;
    const message: EventMessage = {
      kind: 'event',
      actorId: target.sessionId,
      ...identity,
      event: String(type).slice(0, MAX_EVENT_TYPE),
      source: source === undefined ? null : this.sourceName(source),
      at: Date.now(),
    };
    this.events.push(message);
    if (this.events.length > this.eventsKept) this.events.splice(0, this.events.length - this.eventsKept);
    this.publish(message);
  }

  private publish(message: InspectorMessage): void {
    for (const listener of this.listeners) {
      try {
        listener(message);
      } catch {
        // A broken connection is the server's to drop; the others still get the message.
      }
    }
  }

  /** Daemon or session machine actor, or null for anything else (promise and callback actors). */
  private identify(actorRef: ActorRefLike, snapshot: unknown): Identity | null {
    const known = this.identities.get(actorRef);
    if (known !== undefined) return known;
    const machineId = isMachineSnapshot(snapshot) ? snapshot.machine.id : undefined;
    const kind = machineId === undefined ? undefined : this.kinds.get(machineId);
    let identity: Identity | null = null;
    if (kind === 'daemon') identity = { machine: 'daemon' };
    else if (kind === 'session' || kind === 'runner') {
      // The daemon spawns each session with the session id as the actor id; a runner is its session's child.
      const id = actorIdOf(kind === 'session' ? actorRef : parentOf(actorRef));
      identity = id === undefined ? { machine: kind } : { machine: kind, sessionId: id };
    }
    this.identities.set(actorRef, identity);
    return identity;
  }

  private sourceName(source: ActorRefLike): string {
    const identity = this.identify(source, source.getSnapshot());
    if (identity?.machine === 'daemon') return 'daemon';
    if (identity?.machine === 'runner') return `runner ${identity.sessionId ?? ''}`.trim();
    if (identity?.sessionId !== undefined) return identity.sessionId;
    return actorIdOf(source) ?? source.sessionId;
  }

  private forgetOldFinished(): void {
    const finished = [...this.actors.values()].filter((a) => a.machine !== 'daemon' && a.status !== 'active');
    for (const old of finished.slice(0, Math.max(0, finished.length - this.finishedKept))) {
      this.actors.delete(old.actorId);
    }
  }
}

function parentOf(actorRef: ActorRefLike): ActorRefLike | undefined {
  // XState keeps the parent on the actor; its public types do not show it.
  return (actorRef as { _parent?: ActorRefLike })._parent;
}

function actorIdOf(actorRef: ActorRefLike | undefined): string | undefined {
  const id = (actorRef as { id?: unknown }).id;
  return typeof id === 'string' ? id : undefined;
}

function isMachineSnapshot(
  snapshot: unknown,
): snapshot is { value: StateValue; status: string; machine: { id: string } } {
  if (typeof snapshot !== 'object' || snapshot === null) return false;
  const s = snapshot as { value?: unknown; status?: unknown; machine?: { id?: unknown } };
  return (
    typeof s.status === 'string' &&
    (typeof s.value === 'string' || (typeof s.value === 'object' && s.value !== null)) &&
    typeof s.machine?.id === 'string'
  );
}
