/** `warren status`, `warren list`, `warren summary` and `warren timeline`: questions to a running cluster. */
import * as path from "node:path";
import * as warren from "../api/state";
import { timeline as traceOf } from "../api/timeline";
import { currentRuntime } from "../core/current";
import { parseShape } from "../scheduling/shape";
import type { Filters, Gathered } from "../api/state";
import { Target, withCluster } from "./common";
import { banner, bytes, section, stats, table, usageLine } from "./format";
import { demandDict, resourceOrder } from "../scheduling/text";

export type Format = "table" | "json";
const ALL = Number.MAX_SAFE_INTEGER;

export async function status(t: Target): Promise<number> {
  const [nodes, total, available, demand] = await withCluster(t, () =>
    Promise.all([
      warren.nodes(),
      warren.clusterResources(),
      warren.availableResources(),
      currentRuntime().rpc.head("shape.demand", {}),
    ]),
  );
  const out: string[] = [banner(`Cluster status (cluster "${t.cluster}")`), section("Node status")];
  const alive = nodes.filter((n) => n.Alive).sort((a, b) => Number(b.IsHead) - Number(a.IsHead));
  const dead = nodes.filter((n) => !n.Alive);
  out.push("Active:");
  for (const n of alive) out.push(` 1 node_${n.NodeID} (${n.IsHead ? "head, " : ""}${n.NodeManagerHostname} ${n.NodeManagerAddress})`);
  if (!alive.length) out.push(" (no active nodes)");
  out.push("Dead:");
  for (const n of dead) out.push(` 1 node_${n.NodeID} (${n.NodeManagerHostname} ${n.NodeManagerAddress})`);
  if (!dead.length) out.push(" (no dead nodes)");
  out.push("", section("Resources"), "Usage:");
  for (const name of resourceOrder(Object.keys(total))) {
    out.push(` ${usageLine(name, Math.max(0, total[name] - (available[name] ?? 0)), total[name])}`);
  }
  out.push("", "Demands:");
  const waiting = demand.filter((d) => d.pending > 0).sort((a, b) => Number(b.infeasible) - Number(a.infeasible) || b.pending - a.pending);
  for (const d of waiting) {
    out.push(` ${demandDict(parseShape(d.shape))}: ${d.pending}+ pending tasks/actors${d.infeasible ? " (infeasible)" : ""}`);
  }
  if (!waiting.length) out.push(" (no resource demands)");
  console.log(out.join("\n"));
  return 0;
}

export type Kind = "tasks" | "actors" | "objects" | "nodes" | "jobs";

export async function list(t: Target, kind: Kind, o: { filters: Filters; limit: number; detail: boolean; format: Format }): Promise<number> {
  const opts = { filters: o.filters, limit: o.limit, detail: o.detail };
  const s = warren.state;
  const query: Record<Kind, () => Promise<object[]>> = {
    tasks: () => s.listTasks(opts), actors: () => s.listActors(opts), objects: () => s.listObjects(opts), nodes: () => s.listNodes(opts),
    jobs: () => s.listJobs(opts),
  };
  const rows = (await withCluster(t, query[kind])) as Gathered<Record<string, unknown>>;
  warnUnanswered(rows);
  if (o.format === "json") {
    console.log(JSON.stringify(rows, null, 2));
    return 0;
  }
  console.log([banner("List"), section("Stats:"), `Total: ${rows.length}`, "", section("Table:"), rows.length ? table(rows) : "(none)"].join("\n"));
  return 0;
}

/** Tasks and objects come from their owners: say whose rows are missing (stderr, so JSON stays clean). */
function warnUnanswered(result: { unanswered?: string[] }): void {
  if (result.unanswered?.length) console.error(`warning: no answer from ${result.unanswered.join(", ")}: their rows are missing`);
}

function counts(c: Record<string, number>): string {
  return Object.entries(c).map(([k, v]) => `${k}: ${v}`).join(", ");
}

export async function summary(t: Target, kind: "tasks" | "actors" | "objects", format: Format): Promise<number> {
  const s = warren.state;
  let title: string;
  let totals: Record<string, unknown>;
  let groupBy: string;
  let rows: Record<string, unknown>[];
  if (kind === "tasks") {
    const r = await withCluster(t, () => s.summarizeTasks());
    warnUnanswered(r);
    const groups = Object.values(r.summary);
    const of = (type: string) => groups.filter((g) => g.type === type).reduce((n, g) => n + Object.values(g.state_counts).reduce((a, b) => a + b, 0), 0);
    title = "Tasks Summary";
    totals = { total_actor_scheduled: of("ACTOR_CREATION_TASK"), total_actor_tasks: of("ACTOR_TASK"), total_tasks: r.total_tasks };
    groupBy = "func_name";
    rows = groups.map((g) => ({ func_or_class_name: g.func_or_class_name, state_counts: g.state_counts, type: g.type }));
  } else if (kind === "actors") {
    const actors = await withCluster(t, () => s.listActors({ limit: ALL, detail: true }));
    const by = new Map<string, Record<string, number>>();
    for (const a of actors) {
      const c = by.get(String(a.class_name)) ?? {};
      c[String(a.state)] = (c[String(a.state)] ?? 0) + 1;
      by.set(String(a.class_name), c);
    }
    title = "Actors Summary";
    totals = { total_actors: actors.length };
    groupBy = "class";
    rows = [...by].map(([class_name, state_counts]) => ({ class_name, state_counts }));
  } else {
    const objects = await withCluster(t, () => s.listObjects({ limit: ALL, detail: true }));
    warnUnanswered(objects);
    const by = new Map<string, { task_status: string; reference_type: string; count: number; total_size: number }>();
    for (const o of objects) {
      const key = `${o.task_status}/${o.reference_type}`;
      const g = by.get(key) ?? { task_status: String(o.task_status), reference_type: String(o.reference_type), count: 0, total_size: 0 };
      g.count++;
      g.total_size += Number(o.object_size ?? 0) || 0;
      by.set(key, g);
    }
    title = "Objects Summary";
    totals = { total_objects: objects.length, total_size: bytes([...by.values()].reduce((n, g) => n + g.total_size, 0)) };
    groupBy = "task_status, reference_type";
    rows = [...by.values()];
  }
  if (format === "json") {
    console.log(JSON.stringify({ ...totals, summary: rows }, null, 2));
    return 0;
  }
  const shown = rows.map((r) => ({
    ...r,
    ...(r.state_counts ? { state_counts: counts(r.state_counts as Record<string, number>) } : {}),
    ...(typeof r.total_size === "number" ? { total_size: bytes(r.total_size) } : {}),
  }));
  console.log([banner(title), section("Stats:"), stats(totals), "", section(`Table (group by ${groupBy}):`), shown.length ? table(shown) : "(none)"].join("\n"));
  return 0;
}

/** `warren timeline -o FILE`: the cluster's task runs as Chrome trace events (Ray's `ray timeline`). */
export async function timeline(t: Target, file: string): Promise<number> {
  const events = await withCluster(t, () => traceOf(file));
  const runs = events.filter((e) => e.ph === "X").length;
  console.log(`wrote ${runs} task runs of cluster "${t.cluster}" to ${path.resolve(file)}; open it in https://ui.perfetto.dev or chrome://tracing`);
  return 0;
}
