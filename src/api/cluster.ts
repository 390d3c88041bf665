/** `init()` and `shutdown()`: joining a cluster, or starting a private one in child processes. */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { ChildProcess, fork } from "node:child_process";
import { NodeDiedError, OptionsError, WarrenError } from "../errors";
import { redactAddress } from "../address";
import { InitOptions, validateInitOptions } from "../options";
import { Topology, brokerAddress, connectBroker, connectionName } from "../transport";
import { queueAbsent } from "../transport/queues";
import { newOwnerId } from "../wire/ids";
import { nodeResources } from "../node/resources";
import type { NodeConfig } from "../node/options";
import type { NodeSummary } from "../wire/head";
import { Runtime } from "../core/runtime";
import { currentRuntime, hasRuntime } from "../core/current";
import type { RuntimeConfig } from "../core/context";
import { clusterDir, compiled, linkLatestSession, registryFile } from "../core/paths";
import { reachedInit } from "../core/functions";
import { keepLogsOnly } from "../node/logs";
import { removeAfterNodeDied, sweepDeadPrivateClusters } from "../core/leftovers";
import { dashboardOptions } from "../head/dashboard";

const NODE_MAIN = path.join(__dirname, "..", "node", "main.js");

export interface ClusterInfo {
  address: string;
  cluster: string;
  nodeId: string;
  namespace: string;
  jobId: string;
  /** The head's web dashboard (Ray's dashboard_url), when it serves one. */
  dashboardUrl?: string;
}

let head: ChildProcess | undefined;
/** The private cluster init() started, whose folder shutdown() keeps as session_latest. */
let privateCluster: string | undefined;

export async function init(options: InitOptions = {}): Promise<ClusterInfo> {
  if (process.env.WARREN_WORKER) {
    // A worker loading the program's module: what it registered before this call is all it needs.
    if (reachedInit()) return new Promise<never>(() => undefined);
    throw new WarrenError(
      "warren.init() was called inside a task or actor: its worker is already connected to the cluster. " +
        "Call init() once, in the driver program.",
    );
  }
  if (hasRuntime()) throw new WarrenError("warren.init() was already called: call `await warren.shutdown()` first");
  const o = validateInitOptions(options);
  const address = brokerAddress(o.address);
  const ownerId = newOwnerId();
  const namespace = o.namespace ?? ownerId;
  const base = { address, ownerId, namespace, jobId: ownerId, role: "driver" as const, logToDriver: o.logToDriver ?? true, onInfeasible: o.onInfeasible ?? "warn" };
  if (o.cluster) {
    const dashboard = (["includeDashboard", "dashboardPort", "dashboardHost"] as const).filter((k) => o[k] !== undefined);
    if (dashboard.length) {
      throw new OptionsError("init() options", dashboard.map((field) => ({
        field, problem: `applies to a private cluster (init() without cluster); the head of cluster "${o.cluster}" serves its own dashboard (\`warren start --head --dashboard-port N\`)`,
      })));
    }
    return join(o.cluster, base, o.durable);
  }
  const cluster = `local-${randomBytes(6).toString("hex")}`;
  const nodeId = randomBytes(20).toString("hex");
  const sessionDir = clusterDir(cluster);
  const nodeConfig: NodeConfig = {
    address, cluster, nodeId, isHead: true, private: true, sessionDir, durable: o.durable ?? false, dashboard: dashboardOptions(o),
    resources: nodeResources({ numCpus: o.numCpus, numGpus: o.numGpus, memory: o.memory, objectStoreMemory: o.objectStoreMemory, resources: o.resources }),
  };
  // The driver connects first, so an unreachable broker fails here, fast and clearly.
  const rt = await Runtime.start({ ...base, cluster, nodeId, storePath: path.join(sessionDir, "objects.lmdb"), durable: o.durable ?? false });
  try {
    head = await startNode(nodeConfig);
  } catch (err) {
    await rt.close();
    throw err;
  }
  const proc = head;
  privateCluster = cluster;
  proc.once("exit", (code, signal) => {
    if (head !== proc) return; // shutdown() stopped it
    head = undefined;
    rt.clusterLost(new NodeDiedError(
      `the warren node this driver started (pid=${proc.pid}) exited (${signal ?? `code ${code}`}), so nothing can run; ` +
        `call \`await warren.shutdown()\` and init() again. Its last output:\n${logTail(nodeConfig.sessionDir)}`,
    ));
  });
  await startJob(rt);
  void sweepDeadPrivateClusters(address); // what dead private clusters of this machine left, in the background
  const dashboardUrl = dashboardOf(await rt.rpc.head("node.list", {}));
  // As ray.init() does, on stderr (its log).
  if (dashboardUrl) process.stderr.write(`Started a local warren cluster. View the dashboard at ${dashboardUrl}\n`);
  return { address, cluster, nodeId, namespace, jobId: ownerId, dashboardUrl };
}

/**
 * Joins a running cluster as a driver of the node on this machine (its object store is this
 * process's store too), like `ray.init(address=...)`.
 */
async function join(cluster: string, base: Omit<RuntimeConfig, "cluster" | "nodeId" | "storePath">, durable?: boolean): Promise<ClusterInfo> {
  await mustExist(base.address, cluster, base.ownerId);
  const rt = await Runtime.start({ ...base, cluster, nodeId: "", storePath: "" });
  try {
    const nodes = await rt.rpc.head("node.list", {}).catch((err) => {
      throw new WarrenError(`no cluster "${cluster}" answers on ${redactAddress(base.address)} (${err.message}). Start one with \`warren start --head --cluster ${cluster}\``, { cause: err });
    });
    const local = nodes.filter((n) => n.Alive && n.NodeManagerHostname === os.hostname()).sort((a, b) => Number(b.IsHead) - Number(a.IsHead))[0];
    if (!local) {
      throw new WarrenError(`cluster "${cluster}" has no node on this machine (${os.hostname()}): start one with \`warren start --address <broker> --cluster ${cluster}\``);
    }
    // Durable mode is the head's to say, and must be known before any shared queue is declared.
    const info = await rt.rpc.head("cluster.info", {});
    if (durable !== undefined && durable !== info.durable) {
      throw new WarrenError(`cluster "${cluster}" ${info.durable ? "is" : "is not"} durable, and init({ durable: ${durable} }) cannot change that: its head decides (\`warren start --head${info.durable ? " --durable" : ""}\`); leave durable out to take the cluster's setting`);
    }
    if (info.durable) await rt.useDurable();
    rt.config.nodeId = local.NodeID;
    rt.config.storePath = local.ObjectStorePath;
    await startJob(rt);
    return { address: base.address, cluster, nodeId: local.NodeID, namespace: base.namespace, jobId: base.jobId, dashboardUrl: dashboardOf(nodes) };
  } catch (err) {
    await rt.close();
    throw err;
  }
}

/**
 * Connects to a cluster only to ask about it (the CLI's status, list, summary): no local node is
 * needed and nothing runs. Close it with `shutdown()`.
 */
export async function attach(options: { address?: string; cluster: string }): Promise<ClusterInfo> {
  if (hasRuntime()) throw new WarrenError("warren is already initialized in this process");
  const address = brokerAddress(options.address);
  const ownerId = newOwnerId();
  await mustExist(address, options.cluster, ownerId);
  const rt = await Runtime.start({ address, cluster: options.cluster, ownerId, namespace: ownerId, jobId: ownerId, role: "cli", logToDriver: false, nodeId: "", storePath: "" });
  try {
    await rt.rpc.head("node.list", {});
  } catch (err) {
    await rt.close();
    throw new WarrenError(`no cluster "${options.cluster}" answers on ${redactAddress(address)} (${(err as Error).message})`, { cause: err });
  }
  return { address, cluster: options.cluster, nodeId: "", namespace: ownerId, jobId: ownerId };
}

/** The URL of the dashboard the cluster's head serves, if it does. */
function dashboardOf(nodes: NodeSummary[]): string | undefined {
  return nodes.find((n) => n.Alive && n.IsHead)?.DashboardURL;
}

/** Fails clearly, before declaring anything on the broker, if no head of `cluster` runs there. */
async function mustExist(address: string, cluster: string, ownerId: string): Promise<void> {
  const conn = await connectBroker(address, connectionName(cluster, "probe", ownerId));
  try {
    if (await queueAbsent(conn, new Topology(cluster).head)) {
      throw new WarrenError(`no cluster "${cluster}" answers on ${redactAddress(address)}: start one with \`warren start --head --cluster ${cluster}\``);
    }
  } finally {
    await conn.close().catch(() => undefined);
  }
}

function logTail(sessionDir: string): string {
  const logFile = path.join(sessionDir, "node.log");
  return fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").split("\n").slice(-15).join("\n") : "";
}

/** Forks a node daemon and waits until it is consuming. */
export function startNode(config: NodeConfig): Promise<ChildProcess> {
  fs.mkdirSync(config.sessionDir, { recursive: true });
  const logFile = path.join(config.sessionDir, "node.log");
  const log = fs.openSync(logFile, "a");
  const proc = fork(compiled(NODE_MAIN), [], {
    env: { ...process.env, WARREN_NODE: JSON.stringify(config) },
    stdio: ["ignore", log, log, "ipc"],
  });
  fs.closeSync(log);
  return new Promise((resolve, reject) => {
    let failed: string | undefined;
    const onExit = (code: number | null) => {
      const tail = logTail(config.sessionDir);
      fs.rmSync(config.sessionDir, { recursive: true, force: true });
      reject(new WarrenError(failed ? `the warren node failed to start: ${failed}` : `the warren node exited while starting (code ${code}):\n${tail}`));
    };
    proc.once("exit", onExit);
    proc.on("message", (m: { t: string; message?: string }) => {
      if (m.t === "failed") failed = m.message;
      if (m.t !== "ready") return;
      proc.off("exit", onExit);
      resolve(proc);
    });
  });
}

/** The job of this driver (Ray's job: its work ends with it), told to the head; shutdown() ends it. */
let job: string | undefined;

async function startJob(rt: Runtime): Promise<void> {
  const { jobId } = rt.config;
  await rt.rpc.head("job.start", { job_id: jobId, entrypoint: process.argv.slice(1).join(" "), driver_pid: process.pid, driver_node_hostname: os.hostname() });
  job = jobId;
}

export async function shutdown(): Promise<void> {
  if (!hasRuntime()) return;
  const rt = currentRuntime();
  // The head would see the end by this driver's inbox, gone; said, it is a success and is at once.
  // Not while the broker is away (the request would wait in the outbox): the head then sees it gone.
  // Its task events first: what is still unfinished then, the head marks failed with the job.
  rt.events.flush();
  if (job && rt.link.up) await rt.rpc.head("job.end", { jobId: job }).catch(() => undefined);
  job = undefined;
  await rt.close();
  const h = head;
  head = undefined;
  if (h && h.exitCode === null && h.signalCode === null) {
    const exited = new Promise((res) => h.once("exit", res));
    h.disconnect();
    const timer = setTimeout(() => h.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
  const kept = privateCluster;
  privateCluster = undefined;
  if (kept && fs.existsSync(clusterDir(kept))) {
    // A node that stopped has done both; one that died left its queues (mailboxes, shapes) on the broker.
    if (!fs.existsSync(registryFile(kept)) || (await removeAfterNodeDied(kept, rt.config.address))) keepLogsOnly(clusterDir(kept));
    linkLatestSession(kept);
  }
}

export function isInitialized(): boolean {
  return hasRuntime();
}
