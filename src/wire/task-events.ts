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

/**
 * What one process sends the head at a time: the rows of its tasks and runs that changed since
 * its last batch, in columns (TaskEventWriter): up to 10,000 rows a batch, tens of thousands a
 * second under load, whose names, jobs, types and states are a few strings repeated. As objects,
 * a row cost its sender about 5 us to make and serialize and the head as much to read; as
 * columns of indexes into one table of the batch's strings, and times in a Float64Array, a
 * fraction of that, and 60 bytes a row instead of 300.
 */
export interface TaskEventBatch {
  /** The sender's owner id: a worker's is its worker id. */
  from: string;
  node_id: string;
  pid: number;
  /** The distinct strings of the batch's rows, which their columns index. */
  strings: string[];
  tasks: {
    task_id: string[];
    /** Per task, 8 indexes into `strings` (NONE: null). */
    strings: Uint32Array;
    attempt: Uint32Array;
    /** Per task, its creation and end time (NaN: none). */
    times: Float64Array;
  };
  runs: {
    task_id: string[];
    /** Per run, 4 indexes into `strings` (NONE: null). */
    strings: Uint32Array;
    /** Per run, its start and end time (NaN: none). */
    times: Float64Array;
  };
  /** The few failed rows' error columns: of the owner's row (`task`) or of a run, by its index. */
  errors: { task: boolean; row: number; type: string; message: string }[];
}

const NONE = 0xffffffff;
/** A task's strings: name, func_or_class_name, type, job_id, actor_id, parent_task_id, required_resources, state. */
const O = 8;
/** A run's strings: name, job_id, actor_id, state. */
const R = 4;

/** Builds a batch of a known number of task rows and runs, without an object per row. */
export class TaskEventWriter {
  private readonly index = new Map<string | null, number>([[null, NONE]]);
  private readonly strings: string[] = [];
  private readonly tasks: TaskEventBatch["tasks"];
  private readonly runs: TaskEventBatch["runs"];
  private readonly errors: TaskEventBatch["errors"] = [];

  constructor(tasks: number, runs: number) {
    this.tasks = { task_id: new Array(tasks), strings: new Uint32Array(tasks * O), attempt: new Uint32Array(tasks), times: new Float64Array(tasks * 2) };
    this.runs = { task_id: new Array(runs), strings: new Uint32Array(runs * R), times: new Float64Array(runs * 2) };
  }

  /** The owner's row of its `i`th task. */
  task(i: number, info: TaskInfo, state: TaskState, attempt: number): void {
    const t = this.tasks;
    t.task_id[i] = info.task_id;
    const s = i * O;
    t.strings[s] = this.string(info.name);
    t.strings[s + 1] = this.string(info.func_or_class_name);
    t.strings[s + 2] = this.string(info.type);
    t.strings[s + 3] = this.string(info.job_id);
    t.strings[s + 4] = this.string(info.actor_id);
    t.strings[s + 5] = this.string(info.parent_task_id);
    t.strings[s + 6] = this.string(info.required_resources);
    t.strings[s + 7] = this.string(state);
    t.attempt[i] = attempt;
    t.times[2 * i] = info.creation_time_ms;
    t.times[2 * i + 1] = info.end_time_ms ?? NaN;
    if (info.error_type !== null) this.errors.push({ task: true, row: i, type: info.error_type, message: info.error_message ?? "" });
  }

  /** Its `i`th run (of a worker's calls); `error` if it failed. */
  run(i: number, taskId: string, name: string, jobId: string, actorId: string | null, state: TaskRun["state"], startMs: number, endMs: number | undefined, error?: EncodedError): void {
    const r = this.runs;
    r.task_id[i] = taskId;
    const s = i * R;
    r.strings[s] = this.string(name);
    r.strings[s + 1] = this.string(jobId);
    r.strings[s + 2] = this.string(actorId);
    r.strings[s + 3] = this.string(state);
    r.times[2 * i] = startMs;
    r.times[2 * i + 1] = endMs ?? NaN;
    if (error) {
      const { error_type, error_message } = errorColumns(error);
      this.errors.push({ task: false, row: i, type: error_type, message: error_message });
    }
  }

  batch(from: string, nodeId: string, pid: number): TaskEventBatch {
    return { from, node_id: nodeId, pid, strings: this.strings, tasks: this.tasks, runs: this.runs, errors: this.errors };
  }

  private string(s: string | null): number {
    let i = this.index.get(s);
    if (i === undefined) this.index.set(s, (i = this.strings.push(s!) - 1));
    return i;
  }
}

/**
 * A batch's rows, as the head keeps them; `strings` is the batch's table, or a copy of it whose
 * strings the head already had (head/events.ts interns them).
 */
export function readTaskEvents(b: TaskEventBatch, strings = b.strings): { tasks: OwnerRow[]; runs: RunRow[] } {
  const str = (i: number) => (i === NONE ? null : strings[i]);
  const t = b.tasks;
  const tasks = t.task_id.map((task_id, i): OwnerRow => {
    const s = i * O;
    const end = t.times[2 * i + 1];
    return {
      task_id, name: str(t.strings[s])!, func_or_class_name: str(t.strings[s + 1])!, type: str(t.strings[s + 2]) as TaskInfo["type"],
      job_id: str(t.strings[s + 3])!, actor_id: str(t.strings[s + 4]), parent_task_id: str(t.strings[s + 5]), required_resources: str(t.strings[s + 6])!,
      creation_time_ms: t.times[2 * i], end_time_ms: Number.isNaN(end) ? null : end, error_type: null, error_message: null,
      state: str(t.strings[s + 7]) as TaskState, attempt_number: t.attempt[i],
    };
  });
  const r = b.runs;
  const runs = r.task_id.map((task_id, i): RunRow => {
    const s = i * R;
    const end = r.times[2 * i + 1];
    return {
      task_id, name: str(r.strings[s])!, job_id: str(r.strings[s + 1])!, actor_id: str(r.strings[s + 2]), state: str(r.strings[s + 3]) as TaskRun["state"],
      start_time_ms: r.times[2 * i], end_time_ms: Number.isNaN(end) ? null : end, error_type: null, error_message: null,
      node_id: b.node_id, worker_id: b.from, worker_pid: b.pid,
    };
  });
  for (const e of b.errors) Object.assign(e.task ? tasks[e.row] : runs[e.row], { error_type: e.type, error_message: e.message });
  return { tasks, runs };
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
