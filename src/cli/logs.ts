/**
 * `warren logs` (Ray's `ray logs`): the output of a cluster's nodes and workers, from any machine
 * that reaches the broker. Each live node serves its own files (node/logs.ts) on its control
 * queue; lines come prefixed as the driver prints them, `(name pid=N)`. A task's or actor's lines
 * are found by the markers its worker wrote (core/log-files.ts), on every live node, as a task
 * may have run on several (retries) and an actor restarted elsewhere. A dead node's files are not
 * served: they stay on its machine, in its session folder.
 */
import * as warren from "../api/state";
import { currentRuntime } from "../core/current";
import { WarrenError } from "../errors";
import type { LogFileLines, LogPosition, LogsRequest } from "../wire/head";
import { Target, UsageError, withCluster } from "./common";

export interface LogsOptions {
  node?: string;
  task?: string;
  actor?: string;
  tail: number;
  follow: boolean;
}

/** How often `--follow` asks the nodes what is new. */
const FOLLOW_MS = 500;
const ID = /^[0-9a-f]{32}$/;

export async function logs(t: Target, o: LogsOptions): Promise<number> {
  for (const [flag, id] of [["--task", o.task], ["--actor", o.actor]] as const) {
    if (id !== undefined && !ID.test(id)) throw new UsageError(`${flag} takes a ${flag.slice(2)} id, 32 hex digits as \`warren list ${flag.slice(2)}s\` shows (got ${JSON.stringify(id)})`);
  }
  return withCluster(t, async () => {
    const nodes = await nodesToAsk(t, o);
    const ask: LogsRequest = { tail: o.tail, task: o.task, actor: o.actor };
    const answers = await Promise.all(nodes.map((id) => currentRuntime().rpc.node(id, "logs.read", ask)));
    const withLines = answers.flatMap((files, i) => files.filter((f) => f.lines.length).map((f) => ({ node: nodes[i], f })));
    for (const { node, f } of withLines) {
      if (withLines.length > 1) console.log(`==> node ${node.slice(0, 12)} ${f.file} <==`);
      console.log(f.lines.join("\n"));
    }
    if (!withLines.length) console.error(`no ${o.task ? `output of task ${o.task}` : o.actor ? `output of actor ${o.actor}` : "log lines"} on ${nodes.length} live node(s) of cluster "${t.cluster}" (what printed nothing has none; a dead node's files stay on its machine)`);
    if (!o.follow) return 0;
    return follow(nodes, ask, answers);
  }, o.follow ? Infinity : 30);
}

/** Prints what is new on `nodes` every FOLLOW_MS, until interrupted or no node is left to ask. */
async function follow(nodes: string[], ask: LogsRequest, first: LogFileLines[][]): Promise<number> {
  const at = new Map(nodes.map((id, i) => [id, positions(first[i])]));
  for (;;) {
    await new Promise((r) => setTimeout(r, FOLLOW_MS));
    await Promise.all([...at].map(async ([id, since]) => {
      try {
        const files = await currentRuntime().rpc.node(id, "logs.read", { ...ask, follow: since });
        for (const f of files) if (f.lines.length) console.log(f.lines.join("\n"));
        at.set(id, positions(files));
      } catch (err) {
        console.error(`node ${id.slice(0, 12)} stopped answering (${(err as Error).message}); following the others`);
        at.delete(id);
      }
    }));
    if (at.size === 0) throw new WarrenError("no node of the cluster is left to follow");
  }
}

function positions(files: LogFileLines[]): Record<string, LogPosition> {
  return Object.fromEntries(files.map((f) => [f.file, { offset: f.offset, source: f.source }]));
}

/** The live nodes to ask: --node (an id, or a prefix of one), else all; an --actor must be one the head knows. */
async function nodesToAsk(t: Target, o: LogsOptions): Promise<string[]> {
  if (o.actor) {
    const known = await warren.state.listActors({ filters: [["actor_id", "=", o.actor]] });
    if (!known.length) throw new WarrenError(`cluster "${t.cluster}" has no actor ${o.actor}; \`warren list actors\` shows its actors`);
  }
  const alive = (await warren.nodes()).filter((n) => n.Alive).map((n) => n.NodeID);
  if (o.node === undefined) return alive;
  const match = alive.filter((id) => id.startsWith(o.node!));
  if (match.length === 1) return match;
  const which = `its live nodes: ${alive.join(", ") || "none"}`;
  throw new WarrenError(match.length ? `--node ${o.node} is the start of ${match.length} node ids; give more of it (${which})` : `cluster "${t.cluster}" has no live node ${o.node}; ${which}`);
}
