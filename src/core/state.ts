/**
 * Cluster state as Ray shows it, asked through any client that reaches the head and can gather
 * from every process: a driver's or the CLI's runtime (api/state.ts), or the head itself (its
 * dashboard, head/dashboard-views.ts). Nodes, resources, actors and jobs come from the head's
 * registry. Tasks come from two places, merged by one rule (wire/task-events.ts mergeTask): the
 * processes alive now, where their records live (a query is broadcast to every process; a
 * worker's view of the task it runs overrides the owner's "submitted"), and the head's history of
 * task events, which every process sends in batches (core/task-events.ts), so tasks of drivers
 * and workers that have exited are listed too, with where, when they started and ended, and how
 * they failed (bounded: head/events.ts). A live row wins over the history's; a field it lacks
 * (the node of a task its owner saw finish) comes from the history, which the head filters and
 * cuts to the list's limit before it answers (head/events.ts page). Newest first. Objects come
 * from their owners only. A list waits for the processes known to be alive (the head names nodes
 * and drivers, each node its workers), at most a moment; a list missing someone's rows says whom
 * in `unanswered`. A task's events reach the head within about a second (CORE_DEFAULTS.taskEventsMs).
 */
import { OptionsError } from "../errors";
import type { Resources } from "../scheduling/shape";
import type { HeadRequest, HeadRequests, JobRow, NodeSummary, PayloadOf, ReplyOf } from "../wire/head";
import { type Filter, type Predicate, matches } from "../wire/filters";
import { type OwnerRow, type RunRow, type TaskEntry, type TaskRow, mergeTask } from "../wire/task-events";

export type { TaskRow };

/** What the queries ask through: the head's requests, and a broadcast gathered from every process (transport/rpc.ts). */
export interface StateClient {
  head<K extends HeadRequest>(kind: K, payload: PayloadOf<HeadRequests, K>): Promise<ReplyOf<HeadRequests, K>>;
  gather<T>(what: "tasks" | "objects"): Promise<{ rows: T[]; unanswered: string[] }>;
}

export type { Predicate };
/** Ray's filters, `[["state", "=", "RUNNING"]]`, or the shorthand `{ state: "RUNNING" }`. */
export type Filters = Array<[string, Predicate, unknown]> | Record<string, unknown>;

export interface ListOptions {
  filters?: Filters;
  /** At most this many rows (Ray's default: 100). */
  limit?: number;
  /** All columns; otherwise Ray's default ones. */
  detail?: boolean;
}

/** A list of tasks or objects: `unanswered` names the processes whose rows are missing from it. */
export type Gathered<T> = T[] & { unanswered?: string[] };

export type TaskSummary = {
  summary: Record<string, { func_or_class_name: string; type: string; state_counts: Record<string, number> }>;
  total_tasks: number;
  unanswered?: string[];
};

const BASIC_COLUMNS: Record<string, string[]> = {
  tasks: ["task_id", "attempt_number", "name", "state", "job_id", "actor_id", "type", "func_or_class_name", "parent_task_id", "node_id", "error_type", "start_time_ms", "end_time_ms"],
  actors: ["actor_id", "class_name", "state", "name", "pid", "ray_namespace", "node_id"],
  objects: ["object_id", "object_size", "task_status", "reference_type", "owner_pid"],
  nodes: ["node_id", "node_ip", "is_head_node", "state", "node_name", "resources_total"],
  jobs: ["job_id", "type", "status", "entrypoint", "start_time", "end_time", "driver_pid"],
};

/** The state queries, asked through the client `client()` returns at each call. */
export function stateQueries(client: () => StateClient) {
  /** One entry per node ever seen, dead ones with `Alive: false` and empty `Resources`. */
  const nodes = (): Promise<NodeSummary[]> => client().head("node.list", {});

  /** Total resources of the alive nodes. */
  const clusterResources = (): Promise<Resources> => client().head("resources.total", {});

  /**
   * Resources free now on the alive nodes, none at 0: as of each node's last heartbeat (at most
   * half a second old), and at once for actors placed or gone (node/actors.ts reportFree).
   */
  const availableResources = (): Promise<Resources> => client().head("resources.available", {});

  async function listTasks(options: ListOptions = {}): Promise<Gathered<TaskRow>> {
    const filters = predicates(options);
    const c = client();
    const { rows, unanswered } = await c.gather<OwnerRow | (RunRow & { running: true })>("tasks");
    const tasks = new Map<string, TaskEntry>();
    for (const r of rows) {
      const e = tasks.get(r.task_id) ?? {};
      if ("running" in r) e.run = r;
      else e.task = r;
      tasks.set(r.task_id, e);
    }
    // From the history: the newest tasks that pass the filters, enough to fill the list whatever
    // the live rows change, and what it knows of the live ones (the node of a task whose owner
    // saw it finish). An unanswered head is named by the gather already.
    const limit = Math.min((options.limit ?? DEFAULT_LIMIT) + tasks.size, Number.MAX_SAFE_INTEGER);
    const history = await c.head("task.history", { limit, filters, ids: [...tasks.keys()] }).then((h) => h.entries, () => [] as TaskEntry[]);
    for (const h of history) {
      const id = (h.task ?? h.run)!.task_id;
      const live = tasks.get(id);
      tasks.set(id, live ? { task: live.task ?? h.task, run: live.run ?? h.run } : h);
    }
    const merged = [...tasks.values()].map((e) => wholeMs(mergeTask(e.task, e.run)));
    const when = (t: TaskRow) => t.creation_time_ms ?? t.start_time_ms ?? 0;
    return withUnanswered(select("tasks", merged.sort((a, b) => when(b) - when(a)), options), unanswered);
  }

  async function listActors(options: ListOptions = {}): Promise<Record<string, unknown>[]> {
    return select("actors", await client().head("actor.list", {}), options);
  }

  async function listObjects(options: ListOptions = {}): Promise<Gathered<Record<string, unknown>>> {
    const { rows, unanswered } = await client().gather<Record<string, unknown>>("objects");
    return withUnanswered(select("objects", rows, options), unanswered);
  }

  async function listNodes(options: ListOptions = {}): Promise<Record<string, unknown>[]> {
    const rows = (await nodes()).map((n) => ({
      node_id: n.NodeID, node_ip: n.NodeManagerAddress, is_head_node: n.IsHead, state: n.Alive ? "ALIVE" : "DEAD",
      node_name: n.NodeManagerHostname, resources_total: n.Resources, object_store_path: n.ObjectStorePath, metrics_export_port: n.MetricsExportPort,
    }));
    return select("nodes", rows, options);
  }

  /** The cluster's jobs, one per driver that has joined it (Ray's `list_jobs`): running, or how it ended. */
  async function listJobs(options: ListOptions = {}): Promise<JobRow[]> {
    return select("jobs", await client().head("job.list", {}), options);
  }

  /** Tasks grouped by function or class method, with a count per state (Ray's `summarize_tasks`). */
  async function summarizeTasks(): Promise<TaskSummary> {
    return summarize(await listTasks({ limit: Number.MAX_SAFE_INTEGER, detail: true }));
  }

  return { nodes, clusterResources, availableResources, state: { listTasks, listActors, listObjects, listNodes, listJobs, summarizeTasks } };
}

export type StateQueries = ReturnType<typeof stateQueries>;

/** Tasks grouped by function or class method (or by their `name`), with a count per state. */
export function summarize(tasks: Gathered<TaskRow>, by: "func_or_class_name" | "name" = "func_or_class_name"): TaskSummary {
  const summary: TaskSummary["summary"] = {};
  for (const t of tasks) {
    const s = (summary[t[by]] ??= { func_or_class_name: t.func_or_class_name, type: t.type, state_counts: {} });
    s.state_counts[t.state] = (s.state_counts[t.state] ?? 0) + 1;
  }
  return { summary, total_tasks: tasks.length, ...(tasks.unanswered && { unanswered: tasks.unanswered }) };
}

function withUnanswered<T>(rows: T[], unanswered: string[]): Gathered<T> {
  return unanswered.length ? Object.assign(rows, { unanswered }) : rows;
}

/** Ray's default limit of a list. */
const DEFAULT_LIMIT = 100;

/** The options' filters as predicates, once they and the limit are checked. */
function predicates(options: ListOptions): Filter[] {
  const { filters = [], limit = DEFAULT_LIMIT } = options;
  if (!Number.isInteger(limit) || limit < 0) throw new OptionsError("state list options", [{ field: "limit", problem: `must be an integer >= 0 (got ${limit})` }]);
  const preds: Filter[] = Array.isArray(filters) ? filters : Object.entries(filters).map(([k, v]) => [k, "=", v]);
  for (const [key, op] of preds) {
    if (op !== "=" && op !== "!=") throw new OptionsError("state list options", [{ field: `filters.${key}`, problem: `the predicate must be "=" or "!=" (got ${String(op)})` }]);
  }
  return preds;
}

function select<T extends object>(kind: string, rows: T[], options: ListOptions): T[] {
  const preds = predicates(options);
  const { limit = DEFAULT_LIMIT, detail = false } = options;
  const kept = rows.filter((r) => matches(r, preds));
  const cols = BASIC_COLUMNS[kind];
  return kept.slice(0, limit).map((r) => (detail ? r : (Object.fromEntries(cols.filter((c) => c in r).map((c) => [c, (r as Record<string, unknown>)[c]])) as T)));
}

/** Ray's times are whole milliseconds (runs are timed finer, for the timeline). */
function wholeMs(t: TaskRow): TaskRow {
  if (t.start_time_ms !== null) t.start_time_ms = Math.floor(t.start_time_ms);
  if (t.end_time_ms !== null) t.end_time_ms = Math.floor(t.end_time_ms);
  return t;
}
