/**
 * core: this process's task events (Ray's TaskEventBuffer). What changed is noted by reference,
 * never copied on the hot path: the owner's task records (task-manager.ts) when a task is
 * submitted and when it ends, a worker's call contexts (context.ts) when a run starts and ends.
 * Their columns are written from them when the batch goes to the head (wire/task-events.ts): one
 * `task.events` message per process per `taskEventsMs`, sooner when `taskEventsBatch` tasks
 * changed, and at shutdown. A task submitted and finished within one interval is one row; the
 * owner's row carries both times.
 */
import { type TaskRun, TaskEventWriter, errorColumns } from "../wire/task-events";
import type { TaskContext } from "./context";
import { CORE_DEFAULTS } from "./defaults";
import type { Runtime } from "./runtime";
import { type TaskRecord, attemptOf } from "./task-manager";

/** Now, in ms since the epoch with sub-ms precision (a timeline wants microseconds). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** A run's state, from its context; `running` while it runs. */
function runState(c: TaskContext, running: "RUNNING" | "RUNNING_IN_GET" = "RUNNING"): TaskRun["state"] {
  return c.endMs === undefined ? running : c.error ? "FAILED" : "FINISHED";
}

/** A worker's run of a call, from its context; `state` while it runs. */
export function runOf(c: TaskContext, state: "RUNNING" | "RUNNING_IN_GET" = "RUNNING"): TaskRun {
  const error = c.error && errorColumns(c.error);
  return {
    task_id: c.taskId, name: c.taskName, job_id: c.jobId, actor_id: c.actorId ?? null, state: runState(c, state),
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

  /** The tasks whose change has not gone to the head yet. */
  unsent(): Iterable<TaskRecord> {
    return this.tasks;
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
    const w = new TaskEventWriter(this.tasks.size, this.runs.size);
    let i = 0;
    for (const r of this.tasks) w.task(i++, r.info, r.state, attemptOf(r));
    i = 0;
    for (const c of this.runs) w.run(i++, c.taskId, c.taskName, c.jobId, c.actorId ?? null, runState(c), c.startMs ?? 0, c.endMs, c.error);
    this.tasks.clear();
    this.runs.clear();
    this.rt.rpc.notify("task.events", w.batch(ownerId, nodeId, process.pid));
  }

  /** The last batch, before the runtime closes its channel; nothing is sent after. */
  close(): void {
    this.flush();
    this.closed = true;
  }
}
