/**
 * `warren start` and `warren stop`: node daemons of this machine, run in the background (detached,
 * output to a log file in their session directory) and recorded in state files so that `stop`
 * finds them again.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { ChildProcess, fork } from "node:child_process";
import { WarrenError } from "../errors";
import { redactAddress } from "../address";
import { attach, shutdown } from "../api/cluster";
import { clusterDir, compiled, registryFile } from "../core/paths";
import { currentRuntime } from "../core/current";
import { nodes } from "../api/state";
import type { NodeConfig } from "../node/options";
import type { DashboardOptions } from "../head/dashboard";
import { RegistryStore } from "../head/store";
import type { Resources } from "../scheduling/shape";
import { DEFAULT_ADDRESS, Topology, connectBroker, connectionName } from "../transport";
import { NodeRecord, liveRecords, nodeAlive, removeRecord, within, writeRecord } from "./common";
import { describeResources } from "../scheduling/text";

const NODE_MAIN = path.join(__dirname, "..", "node", "main.js");
/** How long a node may take to start, and to stop after SIGTERM before it is killed. */
const START_S = 60;
const STOP_S = 10;

export interface StartOptions {
  head: boolean;
  address: string;
  cluster: string;
  resources: Resources;
  block: boolean;
  /** Durable mode, for a head (nodes that join take the head's). */
  durable: boolean;
  /** For a head: where its web dashboard listens; undefined: none. */
  dashboard?: DashboardOptions;
  objectManagerPort?: number;
}

/** The nodes of the cluster, or undefined when no head answers; throws if the broker is unreachable. */
async function probe(address: string, cluster: string): Promise<Awaited<ReturnType<typeof nodes>> | undefined> {
  try {
    await within(attach({ address, cluster }), 15, `the broker at ${redactAddress(address)}`);
  } catch (err) {
    if ((err as Error).name === "BrokerUnavailableError" || /did not answer/.test((err as Error).message)) throw err;
    return undefined;
  }
  try {
    return await within(nodes(), 10, `the head of cluster "${cluster}"`);
  } finally {
    await shutdown();
  }
}

/** What a node says when it is ready: a head started on a kept registry says what it knew. */
interface Ready {
  t: "ready";
  restored?: { nodes: number; actors: number; durable: boolean };
  dashboardUrl?: string;
}

/** Forks a node daemon in its own process group and waits until it is ready. */
function launch(config: NodeConfig, logFile: string): Promise<{ proc: ChildProcess; ready: Ready }> {
  fs.mkdirSync(config.sessionDir, { recursive: true });
  const log = fs.openSync(logFile, "a");
  const proc = fork(compiled(NODE_MAIN), [], {
    env: { ...process.env, WARREN_NODE: JSON.stringify(config) },
    stdio: ["ignore", log, log, "ipc"],
    detached: true,
  });
  fs.closeSync(log);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      fail(`did not become ready within ${START_S} s`);
    }, START_S * 1000);
    const fail = (why: string) => {
      clearTimeout(timer);
      const tail = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-15).join("\n") : "";
      reject(new WarrenError(`the warren node ${why}; the end of its log ${logFile}:\n${tail}`));
    };
    proc.once("exit", (code, signal) => fail(`exited while starting (${signal ?? `code ${code}`})`));
    proc.on("message", (m: Ready | { t: "failed"; message: string }) => {
      if (m.t === "failed") proc.removeAllListeners("exit").once("exit", () => fail(`failed to start: ${m.message}`));
      if (m.t !== "ready") return;
      clearTimeout(timer);
      proc.removeAllListeners("exit");
      resolve({ proc, ready: m });
    });
  });
}

export async function start(o: StartOptions): Promise<number> {
  const { address, cluster } = o;
  const shown = redactAddress(address);
  const existing = await probe(address, cluster);
  if (o.head) {
    const head = existing?.find((n) => n.Alive && n.IsHead);
    if (head) {
      throw new WarrenError(
        `cluster "${cluster}" on ${shown} already has a live head (node ${head.NodeID} on ${head.NodeManagerHostname}). ` +
          `Join it with \`warren start --address ${shown} --cluster ${cluster}\`, stop it with \`warren stop --cluster ${cluster}\` ` +
          `on its machine, or start another cluster with --cluster <name>.`,
      );
    }
  } else if (!existing) {
    throw new WarrenError(
      `no head of cluster "${cluster}" answers on ${shown}: start one with \`warren start --head --cluster ${cluster}\`, ` +
        `or pass the --address and --cluster of a running cluster.`,
    );
  }

  const nodeId = randomBytes(20).toString("hex");
  const sessionDir = path.join(clusterDir(cluster), `node_${nodeId.slice(0, 12)}`);
  const logFile = path.join(sessionDir, "node.log");
  const config: NodeConfig = { address, cluster, nodeId, isHead: o.head, private: false, resources: o.resources, sessionDir, durable: o.durable, dashboard: o.dashboard, objectManagerPort: o.objectManagerPort };
  const { proc, ready } = await launch(config, logFile);
  const record: NodeRecord = { pid: proc.pid!, cluster, nodeId, isHead: o.head, sessionDir, logFile, address, startedAt: new Date().toISOString() };
  writeRecord(record);
  proc.disconnect();

  const join = `warren start --address '${shown}' --cluster ${cluster}`;
  const r = ready.restored;
  if (r) {
    console.log(`Restarted the head node of warren cluster "${cluster}" from its registry ${registryFile(cluster)}:`);
    console.log(`  it knew ${r.nodes} node(s) and ${r.actors} actor(s); live nodes rejoin and named actors stay${r.durable ? "; durable mode, as the cluster was started" : ""}.`);
  } else {
    console.log(o.head ? `Started the head node of warren cluster "${cluster}".` : `Started a node; it joined warren cluster "${cluster}" (${existing!.filter((n) => n.Alive).length + 1} nodes now).`);
  }
  console.log(`  Node ID:    ${nodeId}`);
  console.log(`  Broker:     ${shown}`);
  console.log(`  Resources:  ${describeResources(o.resources)}`);
  console.log(`  Session:    ${sessionDir}`);
  console.log(`  Log:        ${logFile}`);
  if (ready.dashboardUrl) console.log(`  Dashboard:  ${ready.dashboardUrl}`);
  console.log("");
  console.log("Next steps");
  if (o.head) {
    console.log("  To add another node to this cluster, run on that machine:");
    console.log(`    ${join}`);
    console.log("");
  }
  console.log("  To connect a program (driver) on this machine to this cluster:");
  // On this machine the default broker needs no address (and its password is no secret).
  console.log(`    await warren.init({ ${address === DEFAULT_ADDRESS ? "" : `address: "${shown}", `}cluster: "${cluster}" });`);
  console.log("");
  console.log("  To see the cluster's nodes, resources and demands:");
  console.log(`    warren status --cluster ${cluster}`);
  console.log("");
  console.log(`  To stop the nodes of this cluster that this machine started:`);
  console.log(`    warren stop --cluster ${cluster}`);
  if (address !== shown) {
    console.log(`\n(the broker password is hidden above${address === DEFAULT_ADDRESS ? ": it is RabbitMQ's default, guest" : ": use the one you passed"})`);
  }

  if (!o.block) {
    proc.unref();
    return 0;
  }
  console.log("\n--block: staying in the foreground until the node exits; Ctrl-C stops it.");
  return new Promise<number>((resolve) => {
    let stopping: Promise<unknown> | undefined;
    const onSignal = () => {
      console.log("Stopping the node...");
      stopping ??= stopRecords([record], false);
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    proc.once("exit", (code, signal) => {
      void (stopping ?? Promise.resolve()).finally(() => {
        removeRecord(nodeId);
        console.log(`The node exited (${signal ?? `code ${code}`}).`);
        resolve(code === 0 || stopping ? 0 : 1);
      });
    });
  });
}

/** Whether `pid` has exited, waiting up to `seconds`. */
async function exited(r: NodeRecord, seconds: number): Promise<boolean> {
  const end = Date.now() + seconds * 1000;
  while (nodeAlive(r)) {
    if (Date.now() > end) return false;
    await new Promise((res) => setTimeout(res, 50));
  }
  return true;
}

/** Kills a node's process group (the node and its workers). */
function killGroup(r: NodeRecord): void {
  try {
    process.kill(-r.pid, "SIGKILL");
  } catch {
    try {
      process.kill(r.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** SIGTERM (it stops its workers and leaves), then SIGKILL after STOP_S; --force: SIGKILL at once. */
async function stopNode(r: NodeRecord, force: boolean): Promise<"stopped" | "killed"> {
  let how: "stopped" | "killed" = "stopped";
  if (force) {
    killGroup(r);
    how = "killed";
  } else {
    try {
      process.kill(r.pid, "SIGTERM");
    } catch {
      // already gone
    }
    if (!(await exited(r, STOP_S))) {
      killGroup(r);
      how = "killed";
    }
  }
  await exited(r, STOP_S);
  removeRecord(r.nodeId);
  return how;
}

/** The queues a cluster's head knows of (shapes, actor mailboxes), asked before it is stopped. */
async function clusterQueues(r: NodeRecord): Promise<string[] | undefined> {
  const topo = new Topology(r.cluster);
  try {
    await within(attach({ address: r.address, cluster: r.cluster }), 5, "the broker");
  } catch {
    return undefined;
  }
  try {
    const [shapes, actors] = await within(
      Promise.all([currentRuntime().rpc.head("shape.list", {}), currentRuntime().rpc.head("actor.list", {})]),
      5, "the head",
    );
    return [...shapes.map((s) => topo.shapeQueue(s)), ...actors.map((a) => topo.mailbox({ id: a.actor_id, className: a.class_name }))];
  } catch {
    return undefined;
  } finally {
    await shutdown();
  }
}

/** Removes what a stopped cluster left on the broker (its task queues, mailboxes and exchanges). */
async function removeFromBroker(r: NodeRecord, queues: string[]): Promise<void> {
  const conn = await connectBroker(r.address, connectionName(r.cluster, "cli", "stop"));
  try {
    const ch = await conn.createChannel();
    ch.on("error", () => undefined);
    for (const q of queues) await ch.deleteQueue(q).catch(() => undefined);
    await new Topology(r.cluster).remove(ch).catch(() => undefined);
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** Stops nodes, the heads last, and removes from the broker what the stopped clusters left there. */
async function stopRecords(records: NodeRecord[], force: boolean): Promise<[NodeRecord, string][]> {
  const heads = records.filter((r) => r.isHead);
  const others = records.filter((r) => !r.isHead);
  // A head started here ends its cluster: ask it what to remove before stopping it.
  const leftovers = new Map<NodeRecord, string[]>();
  for (const h of heads) {
    const queues = await clusterQueues(h);
    if (queues) leftovers.set(h, queues);
  }
  const results: [NodeRecord, string][] = [];
  // Nodes first, heads last: a node that leaves tells its head.
  for (const group of [others, heads]) {
    const done = await Promise.all(group.map((r) => stopNode(r, force)));
    group.forEach((r, i) => results.push([r, done[i]]));
  }
  for (const [h, queues] of leftovers) await removeFromBroker(h, queues).catch(() => undefined);
  // The cluster has ended: a head started later for its name starts a new one, not this registry.
  for (const h of heads) RegistryStore.remove(registryFile(h.cluster));
  return results;
}

export async function stop(o: { cluster?: string; force: boolean }): Promise<number> {
  const records = liveRecords(o.cluster);
  const where = o.cluster ? ` of cluster "${o.cluster}"` : "";
  if (records.length === 0) {
    console.log(`No warren nodes${where} started on this machine are running.`);
    return 0;
  }
  const results = await stopRecords(records, o.force);
  for (const [r, how] of results) {
    console.log(`  ${how} ${r.isHead ? "head" : "node"} ${r.nodeId.slice(0, 12)} of cluster "${r.cluster}" (pid ${r.pid})`);
  }
  console.log(`Stopped ${results.length} warren node(s)${where}.`);
  return 0;
}
