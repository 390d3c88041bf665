/**
 * wire: task events (Ray's GCS task events). A task is seen by two processes: its owner (which
 * submitted it and hears its result) and the worker that runs it. Each keeps its own row of it
 * (core/task-manager.ts, core/task-events.ts) and sends what changed to the head in batches
 * (TaskEventBatch); the head keeps both rows per task (head/events.ts), and `mergeTask` is the
 * one rule that makes a state-API row of them, in the head's history and in a live answer alike.
 */
import type { EncodedError } from "../serialization";

/** A task's states (Ray's), moved by the task machine (lifecycle/task.ts). */
export type TaskState =
  | "PENDING_ARGS_AVAIL" | "PENDING_NODE_ASSIGNMENT" | "SUBMITTED_TO_WORKER"
  | "RUNNING" | "RUNNING_IN_GET" | "FINISHED" | "FAILED";

/** What the owner knows of a task besides its state (Ray's columns). */
export interface TaskInfo {
  task_id: string;
  name: string;
  func_or_class_name: string;
  type: "NORMAL_TASK" | "ACTOR_TASK" | "ACTOR_CREATION_TASK";
  job_id: string;
  actor_id: string | null;
  parent_task_id: string | null;
  required_resources: string;
  /** When it was submitted. */
  creation_time_ms: number;
  /** When its owner heard its result (or failed it). */
  end_time_ms: number | null;
  error_type: string | null;
  error_message: string | null;
}

/** The owner's row of a task. */
export interface OwnerRow extends TaskInfo {
  state: TaskState;
  attempt_number: number;
}

/** A run of a task, actor call or actor constructor, as the worker running it sees it; times in ms since the epoch, with fractions. */
export interface TaskRun {
  task_id: string;
  name: string;
  job_id: string;
  actor_id: string | null;
  state: "RUNNING" | "RUNNING_IN_GET" | "FINISHED" | "FAILED";
  start_time_ms: number;
  end_time_ms: number | null;
  error_type: string | null;
  error_message: string | null;
}

/** A run with where it ran (a batch says it once for all its runs). */
export interface RunRow extends TaskRun {
  node_id: string;
  worker_id: string;
  worker_pid: number;
}

/** What one process sends the head at a time: the rows of its tasks and runs that changed since its last batch. */
export interface TaskEventBatch {
  /** The sender's owner id: a worker's is its worker id. */
  from: string;
  node_id: string;
  pid: number;
  tasks: OwnerRow[];
  runs: TaskRun[];
}

/** What the head keeps of a task: either row may be missing (not heard yet, or its sender died first). */
export interface TaskEntry {
  task?: OwnerRow;
  run?: RunRow;
}

/** A task as the state API lists it (Ray's columns). */
export type TaskRow = Omit<TaskInfo, "required_resources" | "creation_time_ms"> & {
  state: string;
  attempt_number: number;
  required_resources: string | null;
  creation_time_ms: number | null;
  /** When it started running, from its worker. */
  start_time_ms: number | null;
  node_id: string | null;
  worker_id: string | null;
  worker_pid: number | null;
};

/** Ray's error columns: the error's class, and the first line of its message. */
export function errorColumns(err: EncodedError): { error_type: string; error_message: string } {
  return { error_type: err.name, error_message: err.message.split("\n")[0].slice(0, 500) };
}

const isFinal = (state: string | undefined) => state === "FINISHED" || state === "FAILED";

/**
 * One row of the owner's and the worker's: the owner's fields and its final state (it decides
 * retries), else the run's state; where and when it ran from the run; its end from the run, else
 * from the owner (a task that never ran: cancelled, its node dead).
 */
export function mergeTask(task: OwnerRow | undefined, run: RunRow | undefined): TaskRow {
  const t = (task ?? run)!;
  return {
    task_id: t.task_id,
    attempt_number: task?.attempt_number ?? 0,
    name: t.name,
    state: run && !isFinal(task?.state) ? run.state : task!.state,
    job_id: t.job_id,
    actor_id: t.actor_id,
    type: task?.type ?? (run!.actor_id ? "ACTOR_TASK" : "NORMAL_TASK"),
    func_or_class_name: task?.func_or_class_name ?? t.name,
    parent_task_id: task?.parent_task_id ?? null,
    required_resources: task?.required_resources ?? null,
    node_id: run?.node_id ?? null,
    worker_id: run?.worker_id ?? null,
    worker_pid: run?.worker_pid ?? null,
    creation_time_ms: task?.creation_time_ms ?? null,
    start_time_ms: run?.start_time_ms ?? null,
    end_time_ms: run?.end_time_ms ?? task?.end_time_ms ?? null,
    error_type: task?.error_type ?? run?.error_type ?? null,
    error_message: task?.error_message ?? run?.error_message ?? null,
  };
}
