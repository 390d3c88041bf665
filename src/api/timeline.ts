/**
 * `warren.timeline(file?)` (Ray's `ray.timeline`): the runs of the cluster's tasks and actor calls
 * kept in the head's history (head/events.ts), as Chrome trace events: one complete event
 * (`ph: "X"`) per run that has ended, on a track per node (`pid`) and worker (`tid`, its process
 * id), `ts` and `dur` in microseconds. A JSON array of them loads in Perfetto (ui.perfetto.dev)
 * and chrome://tracing; Perfetto wants whole-number pids, so nodes are numbered and named by
 * metadata events.
 */
import * as fs from "node:fs";
import { currentRuntime } from "../core/current";
import { type TaskEntry, mergeTask } from "../wire/task-events";

/** A Chrome trace event: a run (`X`), or the name of a node's or a worker's track (`M`). */
export interface TraceEvent {
  name: string;
  ph: "X" | "M";
  pid: number;
  tid: number;
  ts?: number;
  dur?: number;
  cat?: string;
  args: Record<string, unknown>;
}

/** The trace events of the cluster's ended runs, oldest first; written to `file` as JSON if given. */
export async function timeline(file?: string): Promise<TraceEvent[]> {
  const rpc = currentRuntime().rpc;
  const entries: TaskEntry[] = [];
  let before: number | undefined;
  do {
    const page = await rpc.head("task.history", { limit: Number.MAX_SAFE_INTEGER, before });
    entries.push(...page.entries);
    before = page.next;
  } while (before !== undefined);
  const events = traceEvents(entries);
  if (file) fs.writeFileSync(file, JSON.stringify(events));
  return events;
}

/** The trace events of `entries` (a page of the history or several), oldest run first. */
export function traceEvents(entries: TaskEntry[]): TraceEvent[] {
  const nodes = new Map<string, number>();
  const workers = new Set<string>();
  const meta: TraceEvent[] = [];
  const runs: TraceEvent[] = [];
  for (const e of entries) {
    const run = e.run;
    if (!run || run.end_time_ms === null) continue;
    let pid = nodes.get(run.node_id);
    if (pid === undefined) {
      nodes.set(run.node_id, (pid = nodes.size + 1));
      meta.push({ name: "process_name", ph: "M", pid, tid: 0, args: { name: `node ${run.node_id}` } });
    }
    if (!workers.has(`${pid}/${run.worker_pid}`)) {
      workers.add(`${pid}/${run.worker_pid}`);
      meta.push({ name: "thread_name", ph: "M", pid, tid: run.worker_pid, args: { name: `worker ${run.worker_id} pid=${run.worker_pid}` } });
    }
    const t = mergeTask(e.task, run);
    runs.push({
      name: t.name, cat: t.type, ph: "X", pid, tid: run.worker_pid,
      ts: run.start_time_ms * 1000, dur: Math.max(0, run.end_time_ms - run.start_time_ms) * 1000,
      args: {
        task_id: t.task_id, job_id: t.job_id, actor_id: t.actor_id, func_or_class_name: t.func_or_class_name, state: run.state,
        attempt_number: t.attempt_number, node_id: run.node_id, worker_id: run.worker_id, worker_pid: run.worker_pid,
        ...(run.error_type && { error_type: run.error_type, error_message: run.error_message }),
      },
    });
  }
  return [...meta, ...runs.sort((a, b) => a.ts! - b.ts!)];
}
