/** The actor lifecycle, kept by the head's registry: the one source of an actor's state. */
import { assign, createActor, setup } from "xstate";
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

export function startActorLifecycle() {
  return createActor(actorMachine).start();
}
