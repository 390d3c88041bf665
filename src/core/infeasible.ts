/**
 * core: demands no node can meet (Ray's "No available node types can fulfill resource request").
 * The head says so on the control exchange when a shape no alive node can run is announced, and
 * again while its queue holds messages (head/server.ts). A process with tasks or actors waiting
 * on it warns, naming the demand and what the nodes have; they wait on, for a node that may join.
 * With init({ onInfeasible: "error" }) they fail with InfeasibleError instead, and the nodes drop
 * their messages should one come to run them later.
 */
import { InfeasibleError } from "../errors";
import { encodeError } from "../serialization";
import { type Resources, parseShape } from "../scheduling/shape";
import { demandDict, describeResources } from "../scheduling/text";
import type { InfeasibleNotice } from "../wire/head";
import type { Runtime } from "./runtime";

export function onInfeasible(rt: Runtime, notice: InfeasibleNotice): void {
  const waiting = rt.tasks.waitingOn(rt.topo.tasks, notice.shape);
  if (waiting.length === 0) return;
  const text = describe(rt.config.cluster, parseShape(notice.shape), notice.nodes);
  if (rt.config.onInfeasible !== "error") {
    const what = waiting.length === 1 ? "1 task or actor of this process waits" : `${waiting.length} tasks and actors of this process wait`;
    console.warn(`warren: ${text}; ${what} for it, and will run once a node that has it joins (or fail at once, with init({ onInfeasible: "error" })).`);
    return;
  }
  const error = new InfeasibleError(`${text}, and init({ onInfeasible: "error" }) was set`);
  for (const [taskId, rec] of waiting) {
    rt.cancel(taskId, false, false, error);
    const actorId = rec.info.type === "ACTOR_CREATION_TASK" ? rec.info.actor_id : null;
    if (!actorId) continue;
    // The actor is dead before it lived: its calls here fail with why, and the head buries it (no node places it later).
    rt.tasks.onActorDead({ id: actorId, cause: encodeError(error) });
    void rt.rpc.head("actor.kill", { id: actorId, noRestart: true, why: "no node of the cluster has the resources it asks for" });
  }
}

/** What is wanted, what the nodes have, and what to do. */
function describe(cluster: string, demand: Resources, nodes: Resources[]): string {
  const missing = Object.fromEntries(Object.entries(demand).filter(([k, v]) => !nodes.some((n) => (n[k] ?? 0) >= v)));
  const have = nodes.length === 0
    ? "it has no live node"
    : `its ${nodes.length} live node(s) have: ${nodes.slice(0, 3).map(describeResources).join("; ")}${nodes.length > 3 ? `; and ${nodes.length - 3} more` : ""}`;
  return `no node of cluster "${cluster}" can fulfill resource request ${demandDict(demand)}: ` +
    `${have}. No node has ${demandDict(missing)}: add a node that has it (\`warren start ${startFlags(missing)}\`), or ask for less`;
}

/** The `warren start` flags of a node that has `r`. */
function startFlags(r: Resources): string {
  const flags = { CPU: "--num-cpus", GPU: "--num-gpus", memory: "--memory", object_store_memory: "--object-store-memory" } as Record<string, string>;
  const custom = Object.fromEntries(Object.entries(r).filter(([k]) => !flags[k]));
  const named = Object.entries(r).filter(([k]) => flags[k]).map(([k, v]) => `${flags[k]} ${v}`);
  return [...named, ...(Object.keys(custom).length > 0 ? [`--resources '${JSON.stringify(custom)}'`] : [])].join(" ");
}
