/**
 * lifecycle: xstate machines for tasks (here), actors and nodes. A machine is the one source of
 * a thing's state: the owner drives its tasks' machines from what it observes, and the state
 * API reads `snapshot.value`.
 */
import type { TaskState } from "../wire/task-events";
import { assign, setup, transition } from "xstate";

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


const STATES: TaskState[] = [
  "PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT", "SUBMITTED_TO_WORKER", "RUNNING", "RUNNING_IN_GET", "FINISHED", "FAILED",
];
const EVENTS: TaskEvent["type"][] = ["ARGS_READY", "DISPATCHED", "RUN", "BLOCK", "UNBLOCK", "RETRY", "FINISH", "FAIL"];

/**
 * The machine's transition function as a table, computed by xstate itself from every
 * (state, event) pair on the first transition: a process that never owns a task (an actor's
 * worker) does not pay its 10-20 ms at start. An owner moves each of its tasks through it with a
 * lookup: a live actor per task cost about 40 us, which is most of a small task's budget on the
 * owner's side. (The machine has no guards; its context, attempt and error, the owner keeps
 * beside the state.)
 */
let table: Record<string, Partial<Record<string, TaskState>>> | undefined;

function transitions(): Record<string, Partial<Record<string, TaskState>>> {
  const t: Record<string, Partial<Record<string, TaskState>>> = {};
  for (const state of STATES) {
    t[state] = {};
    if (taskMachine.states[state].type === "final") continue; // an ended task stays ended, as a live actor would
    const at = taskMachine.resolveState({ value: state, context: { attempt: 0 } });
    for (const type of EVENTS) {
      const [next] = transition(taskMachine, at, (type === "FAIL" ? { type, error: "" } : { type }) as TaskEvent);
      if (next.value !== state) t[state][type] = next.value as TaskState;
    }
  }
  return t;
}

/** The state after `event` (unchanged if the machine ignores it there). */
export function nextTaskState(state: TaskState, event: TaskEvent["type"]): TaskState {
  return (table ??= transitions())[state][event] ?? state;
}

export const INITIAL_TASK_STATE: TaskState = "PENDING_ARGS_AVAIL";
