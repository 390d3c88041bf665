/**
 * head: the dashboard's JSON routes (`/api/...`), built on the state API's queries
 * (core/state.ts) as the head answers them: the registry's lists at once, tasks and objects
 * gathered from every process. One gather of each serves every route asked within `sharedMs`,
 * so a page that polls all of them costs one broadcast per kind. The machine view adds each
 * node's workers, asked of the node (node/answers.ts workerRows).
 */
import type { Resources } from "../scheduling/shape";
import { type Gathered, type StateQueries, type TaskRow, summarize } from "../core/state";
import type { LogFileLines, WorkerRow } from "../wire/head";
import type { ApiAnswer, ApiRoute } from "./dashboard";

/** What the routes are built from. */
export interface ViewSource {
  cluster: string;
  /** The state API's queries, answered by this head. */
  queries: StateQueries;
  /** What an alive node had free at its last report. */
  available(nodeId: string): Resources | undefined;
  /** The workers of node `nodeId`, asked of it. */
  workers(nodeId: string): Promise<WorkerRow[]>;
  /** The last `tail` lines of each log file of node `nodeId`, asked of it (node/logs.ts, as `warren logs` does). */
  logs(nodeId: string, tail: number): Promise<LogFileLines[]>;
}

export const VIEW_DEFAULTS = {
  /** How long a gathered list serves the routes asked after it. */
  sharedMs: 1000,
  /** How long a node may take to list its workers before its row says it did not answer. */
  workersMs: 2000,
  /** The lines of a worker's log the logs route shows: its last ones. */
  logLines: 500,
  /** Recent failed tasks shown, newest first, and rows of the longer lists. */
  failures: 20,
  rows: 200,
};

const ALL = { limit: Number.MAX_SAFE_INTEGER, detail: true };
type Row = Record<string, unknown>;

/** Running now: the history also gives finished tasks their worker's pid, which may run another task since. */
const runningNow = (t: TaskRow) => t.state === "RUNNING" || t.state === "RUNNING_IN_GET";

/** Where the logs of worker `pid` on node `nodeId` are served. */
const logsUrl = (nodeId: unknown, pid: unknown) => (nodeId && pid ? `/api/logs?node=${nodeId}&pid=${pid}` : null);

/** `fetch()` run at most once per `ms`: callers within that time share its answer. */
function shared<T>(fetch: () => Promise<T>, ms: number): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | undefined;
  return () => {
    if (!last || Date.now() - last.at > ms) {
      last = { at: Date.now(), value: fetch() };
      last.value.catch(() => (last = undefined));
    }
    return last.value;
  };
}

export function dashboardRoutes(src: ViewSource): Record<string, ApiRoute> {
  const { state } = src.queries;
  const tasks = shared(() => state.listTasks(ALL), VIEW_DEFAULTS.sharedMs);
  const objects = shared(() => state.listObjects(ALL), VIEW_DEFAULTS.sharedMs);
  const json = (value: unknown): ApiAnswer => ({ json: value });
  return {
    "/api/nodes": async () => json({ cluster: src.cluster, nodes: await machineView(src, await tasks()) }),
    "/api/tasks": async () => json(taskView(await tasks())),
    "/api/actors": async () => json({ actors: (await state.listActors(ALL)).map((a) => ({ ...a, logs: logsUrl(a.node_id, a.pid) })) }),
    "/api/objects": async () => json(objectView(await objects(), await state.listNodes(ALL))),
    "/api/jobs": async () => json({ jobs: await state.listJobs(ALL) }),
    "/api/logs": (q) => logs(src, q),
  };
}

/** The nodes, what each has and has free, and its workers with the task or actor each runs now. */
async function machineView(src: ViewSource, tasks: Gathered<TaskRow>): Promise<Row[]> {
  const [nodes, actors] = await Promise.all([src.queries.state.listNodes(ALL), src.queries.state.listActors(ALL)]);
  const key = (nodeId: unknown, pid: unknown) => `${nodeId}:${pid}`;
  const running = new Map(tasks.filter(runningNow).map((t) => [key(t.node_id, t.worker_pid), t]));
  const hosting = new Map(actors.filter((a) => a.state === "ALIVE" && a.pid).map((a) => [key(a.node_id, a.pid), a]));
  return Promise.all(nodes.map(async (n) => {
    const row: Row = { ...n, resources_available: src.available(n.node_id as string) ?? {}, workers: [] };
    if (n.state !== "ALIVE") return row;
    try {
      const workers = await within(src.workers(n.node_id as string), VIEW_DEFAULTS.workersMs, `node ${n.node_id} did not list its workers within ${VIEW_DEFAULTS.workersMs / 1000} s`);
      row.workers = workers.map((w) => {
        const t = running.get(key(n.node_id, w.pid));
        const a = hosting.get(key(n.node_id, w.pid));
        return { ...w, task_name: t?.name ?? null, task_id: t?.task_id ?? null, actor_class: a?.class_name ?? null, logs: logsUrl(n.node_id, w.pid) };
      });
    } catch (err) {
      row.workers = null;
      row.workers_error = (err as Error).message;
    }
    return row;
  }));
}

function within<T>(p: Promise<T>, ms: number, why: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(why)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Tasks by name (the `name` option, else the function's) with a count per state, the latest failures, and what runs now. */
function taskView(tasks: Gathered<TaskRow>): Row {
  const failures = tasks.filter((t) => t.state === "FAILED").sort((a, b) => (b.end_time_ms ?? 0) - (a.end_time_ms ?? 0));
  return {
    ...summarize(tasks, "name"),
    recent_failures: failures.slice(0, VIEW_DEFAULTS.failures).map((t) => ({
      task_id: t.task_id, name: t.name, error_type: t.error_type, error_message: t.error_message, end_time_ms: t.end_time_ms, logs: logsUrl(t.node_id, t.worker_pid),
    })),
    running: tasks.filter(runningNow).slice(0, VIEW_DEFAULTS.rows).map((t) => ({
      task_id: t.task_id, name: t.name, state: t.state, node_id: t.node_id, worker_pid: t.worker_pid, start_time_ms: t.start_time_ms, logs: logsUrl(t.node_id, t.worker_pid),
    })),
  };
}

/** The objects, and per alive node what its store holds (bytes, count) of what it may (object_store_memory). */
function objectView(objects: Gathered<Row>, nodes: Row[]): Row {
  const size = (o: Row) => (typeof o.object_size === "number" ? o.object_size : 0);
  const stores = nodes.filter((n) => n.state === "ALIVE").map((n) => {
    const held = objects.filter((o) => o.location === `node:${n.node_id}`);
    return { node_id: n.node_id, bytes: held.reduce((s, o) => s + size(o), 0), count: held.length, capacity: (n.resources_total as Resources).object_store_memory ?? null };
  });
  const inline = objects.filter((o) => o.location === "owner");
  return {
    total_count: objects.length,
    total_bytes: objects.reduce((s, o) => s + size(o), 0),
    stores,
    inline: { bytes: inline.reduce((s, o) => s + size(o), 0), count: inline.length },
    objects: objects.slice(0, VIEW_DEFAULTS.rows),
    ...(objects.unanswered && { unanswered: objects.unanswered }),
  };
}

/** The last lines of one worker's log, asked of its node (the dashboard's links to a worker's output). */
async function logs(src: ViewSource, q: URLSearchParams): Promise<ApiAnswer> {
  const nodeId = q.get("node");
  const pid = q.get("pid");
  if (!nodeId || !pid || !/^\d+$/.test(pid)) return { status: 400, text: "pass node=<node id> and pid=<worker pid>, as the dashboard's links do\n" };
  const node = (await src.queries.nodes()).find((n) => n.NodeID === nodeId);
  if (!node) return { status: 404, text: `No node ${nodeId} is known to cluster "${src.cluster}".\n` };
  if (!node.Alive) return { status: 404, text: `Node ${nodeId} is dead: its logs stay on ${node.NodeManagerHostname}, in its session folder's logs/.\n` };
  const file = (await src.logs(nodeId, VIEW_DEFAULTS.logLines)).find((f) => f.pid === Number(pid));
  if (!file) return { status: 404, text: `Node ${nodeId} has no log of a worker with pid ${pid}.\n` };
  return { status: 200, text: file.lines.map((l) => `${l}\n`).join("") };
}
