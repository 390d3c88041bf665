/**
 * lifecycle: xstate machines for tasks (here), actors and nodes. A machine is the one source of
 * a thing's state: the owner drives its tasks' machines from what it observes, and the state
 * API reads `snapshot.value`.
 */
import { assign, createActor, setup } from "xstate";

export type TaskEvent =
  | { type: "ARGS_READY" }
  | { type: "DISPATCHED" }
  | { type: "RUN" }
  | { type: "BLOCK" }
  | { type: "UNBLOCK" }
  | { type: "RETRY" }
  | { type: "FINISH" }
  | { type: "FAIL"; error: string };

export const taskMachine = setup({
  types: {
    context: {} as { attempt: number; error?: string },
    events: {} as TaskEvent,
  },
}).createMachine({
  id: "task",
  initial: "PENDING_ARGS_AVAIL",
  context: { attempt: 0 },
  on: {
    FINISH: ".FINISHED",
    FAIL: { target: ".FAILED", actions: assign({ error: ({ event }) => event.error }) },
  },
  states: {
    PENDING_ARGS_AVAIL: { on: { ARGS_READY: "PENDING_NODE_ASSIGNMENT" } },
    PENDING_NODE_ASSIGNMENT: { on: { DISPATCHED: "SUBMITTED_TO_WORKER", RUN: "RUNNING" } },
    SUBMITTED_TO_WORKER: { on: { RUN: "RUNNING" } },
    RUNNING: {
      on: {
        BLOCK: "RUNNING_IN_GET",
        RETRY: { target: "PENDING_NODE_ASSIGNMENT", actions: assign({ attempt: ({ context }) => context.attempt + 1 }) },
      },
    },
    RUNNING_IN_GET: { on: { UNBLOCK: "RUNNING" } },
    FINISHED: { type: "final" },
    FAILED: { type: "final" },
  },
});

export type TaskState =
  | "PENDING_ARGS_AVAIL" | "PENDING_NODE_ASSIGNMENT" | "SUBMITTED_TO_WORKER"
  | "RUNNING" | "RUNNING_IN_GET" | "FINISHED" | "FAILED";

export function startTask() {
  return createActor(taskMachine).start();
}

export type TaskActor = ReturnType<typeof startTask>;
