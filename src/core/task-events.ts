/**
 * core: this process's task events (Ray's TaskEventBuffer). What changed is noted by reference,
 * never copied on the hot path: the owner's task records (task-manager.ts) when a task is
 * submitted and when it ends, a worker's call contexts (context.ts) when a run starts and ends.
 * The rows are made from them when the batch goes to the head: one `task.events` message per
 * process per `taskEventsMs`, sooner when `taskEventsBatch` tasks changed, and at shutdown. A task
 * submitted and finished within one interval is one row; the owner's row carries both times.
 */
import type { TaskRun } from "../wire/task-events";
import { errorColumns } from "../wire/task-events";
import type { TaskContext } from "./context";
import { CORE_DEFAULTS } from "./defaults";
import type { Runtime } from "./runtime";
import { type TaskRecord, rowOf } from "./task-manager";

/** Now, in ms since the epoch with sub-ms precision (a timeline wants microseconds). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** A worker's run of a call, from its context; `state` while it runs. */
export function runOf(c: TaskContext, state: "RUNNING" | "RUNNING_IN_GET" = "RUNNING"): TaskRun {
  const error = c.error && errorColumns(c.error);
  return {
    task_id: c.taskId, name: c.taskName, job_id: c.jobId, actor_id: c.actorId ?? null,
    state: c.endMs === undefined ? state : error ? "FAILED" : "FINISHED",
    start_time_ms: c.startMs ?? 0, end_time_ms: c.endMs ?? null, error_type: error?.error_type ?? null, error_message: error?.error_message ?? null,
  };
}

export class TaskEvents {
  private readonly tasks = new Set<TaskRecord>();
  private readonly runs = new Set<TaskContext>();
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly rt: Runtime) {}

  /** A task this process owns was submitted or ended. */
  task(rec: TaskRecord): void {
    this.tasks.add(rec);
    this.due();
  }

  /** A call this worker runs started or ended (its context's startMs, endMs, error). */
  run(ctx: TaskContext): void {
    this.runs.add(ctx);
    this.due();
  }

  private due(): void {
    if (this.tasks.size + this.runs.size >= CORE_DEFAULTS.taskEventsBatch) this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), CORE_DEFAULTS.taskEventsMs);
      this.timer.unref();
    }
  }

  /** Sends what changed since the last batch, if anything did. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed || this.tasks.size + this.runs.size === 0) return;
    const { ownerId, nodeId } = this.rt.config;
    const tasks = [...this.tasks].map(rowOf);
    const runs = [...this.runs].map((c) => runOf(c));
    this.tasks.clear();
    this.runs.clear();
    this.rt.rpc.notify("task.events", { from: ownerId, node_id: nodeId, pid: process.pid, tasks, runs });
  }

  /** The last batch, before the runtime closes its channel; nothing is sent after. */
  close(): void {
    this.flush();
    this.closed = true;
  }
}
