/** The actor lifecycle, kept by the head's registry: the one source of an actor's state. */
import { assign, createActor, setup, type Snapshot, type SnapshotFrom } from "xstate";
import type { EncodedError } from "../serialization";
import type { ActorEvent } from "../wire/head";

export const actorMachine = setup({
  types: {
    context: {} as { restarts: number; nodeId?: string; pid?: number; cause?: EncodedError },
    events: {} as ActorEvent,
  },
  actions: {
    placed: assign(({ event }) => (event.type === "ALIVE" ? { nodeId: event.nodeId, pid: event.pid } : {})),
  },
}).createMachine({
  id: "actor",
  initial: "PENDING_CREATION",
  context: { restarts: 0 },
  on: { DEAD: { target: ".DEAD", actions: assign({ cause: ({ event }) => event.cause }) } },
  states: {
    PENDING_CREATION: { on: { ALIVE: { target: "ALIVE", actions: "placed" } } },
    ALIVE: { on: { RESTARTING: { target: "RESTARTING", actions: assign({ restarts: ({ context }) => context.restarts + 1 }) } } },
    RESTARTING: { on: { ALIVE: { target: "ALIVE", actions: "placed" } } },
    DEAD: { type: "final" },
  },
});

export type ActorSnapshot = SnapshotFrom<typeof actorMachine>;

/** What the registry reads and drives of an actor's lifecycle: the live machine, or a dead actor's last snapshot. */
export interface ActorLifecycle {
  send(event: ActorEvent): void;
  getSnapshot(): ActorSnapshot;
  getPersistedSnapshot(): Snapshot<unknown>;
  subscribe(next: (s: ActorSnapshot) => void): { unsubscribe(): void };
}

/** A new actor's lifecycle, or one restored from its persisted snapshot. */
export function startActorLifecycle(snapshot?: Snapshot<unknown>): ActorLifecycle {
  const live = createActor(actorMachine, snapshot && { snapshot }).start();
  return live.getSnapshot().value === "DEAD" ? endedLifecycle(live) : live;
}

/**
 * A DEAD actor's lifecycle, kept as its last snapshot alone: DEAD is final, so nothing changes it
 * again, and a live machine costs the head about 4.5 KB of heap for each of the up to 100,000
 * dead actors it keeps (HEAD_DEFAULTS.deadActorsKept), thousands a minute with shared actors.
 */
export function endedLifecycle(live: ActorLifecycle): ActorLifecycle {
  const snapshot = live.getSnapshot();
  const persisted = live.getPersistedSnapshot();
  return {
    send: () => undefined,
    getSnapshot: () => snapshot,
    getPersistedSnapshot: () => persisted,
    subscribe: (next) => {
      // Heard once, after subscribe returns (as a live machine's changes come): the incarnation is over.
      let subscribed = true;
      queueMicrotask(() => subscribed && next(snapshot));
      return { unsubscribe: () => void (subscribed = false) };
    },
  };
}
