/** The node lifecycle, kept by the head's registry: ALIVE until it stops answering, then DEAD for good. */
import { createActor, setup } from "xstate";

export const nodeMachine = setup({
  types: { events: {} as { type: "DIED" } },
}).createMachine({
  id: "node",
  initial: "ALIVE",
  states: {
    ALIVE: { on: { DIED: "DEAD" } },
    DEAD: { type: "final" },
  },
});

export type NodeState = "ALIVE" | "DEAD";

export function startNodeLifecycle() {
  return createActor(nodeMachine).start();
}
