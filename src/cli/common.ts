/**
 * What the CLI's commands share: its errors, the state files of the nodes this machine started,
 * and connecting to a cluster to ask about it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { WarrenError } from "../errors";
import { redactAddress } from "../address";
import { attach, shutdown } from "../api/cluster";
import { brokerAddress } from "../transport";
import { runsWith } from "../node/processes";
import { WARREN_HOME } from "../core/paths";

export { PACKAGE_ROOT } from "../core/paths";

/** Bad input on the command line: printed with a hint, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Where `warren start` records the nodes it started, one JSON file per node. */
export const NODES_DIR = path.join(WARREN_HOME, "nodes");

export interface NodeRecord {
  pid: number;
  cluster: string;
  nodeId: string;
  isHead: boolean;
  sessionDir: string;
  logFile: string;
  /** With its password: `warren stop` and `warren status` reconnect with it (the file is 0600). */
  address: string;
  startedAt: string;
}

export function recordFile(nodeId: string): string {
  return path.join(NODES_DIR, `${nodeId}.json`);
}

export function writeRecord(r: NodeRecord): void {
  fs.mkdirSync(NODES_DIR, { recursive: true, mode: 0o700 });
  const file = recordFile(r.nodeId);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(r, null, 2), { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
}

export function removeRecord(nodeId: string): void {
  fs.rmSync(recordFile(nodeId), { force: true });
}

/** Whether the node's process still runs (and is that node, not a process that reused its pid). */
export function nodeAlive(r: Pick<NodeRecord, "pid" | "nodeId">): boolean {
  return runsWith(r.pid, r.nodeId);
}

/** The records of nodes that still run; files of nodes that are gone are removed on the way. */
export function liveRecords(cluster?: string): NodeRecord[] {
  let names: string[];
  try {
    names = fs.readdirSync(NODES_DIR).filter((n) => n.endsWith(".json"));
  } catch {
    return [];
  }
  const live: NodeRecord[] = [];
  for (const name of names) {
    const file = path.join(NODES_DIR, name);
    let r: NodeRecord;
    try {
      r = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch {
      fs.rmSync(file, { force: true }); // unreadable: not ours to keep
      continue;
    }
    if (!nodeAlive(r)) fs.rmSync(file, { force: true });
    else if (cluster === undefined || r.cluster === cluster) live.push(r);
  }
  return live;
}

export interface Target {
  address: string;
  cluster: string;
}

/**
 * The cluster a query is about: --cluster, else the one cluster this machine started nodes of,
 * else "default"; the broker: --address, else WARREN_ADDRESS, else the one that cluster's nodes
 * were started with, else the local broker.
 */
export function resolveTarget(opts: { address?: string; cluster?: string }): Target {
  const records = liveRecords();
  const clusters = [...new Set(records.map((r) => r.cluster))];
  const cluster = opts.cluster ?? (clusters.length === 1 ? clusters[0] : "default");
  const recorded = records.find((r) => r.cluster === cluster)?.address;
  return { cluster, address: opts.address ?? process.env.WARREN_ADDRESS ?? recorded ?? brokerAddress() };
}

/** Rejects with `what did not answer within N s` if `p` takes longer. */
export function within<T>(p: Promise<T>, seconds: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WarrenError(`${what} did not answer within ${seconds} s`)), seconds * 1000);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/**
 * Runs `fn` connected to the cluster (no local node needed), within `seconds` (unbounded if
 * Infinity), then disconnects. A cluster that does not answer is a clear error naming it and how to start it.
 */
export async function withCluster<T>(t: Target, fn: () => Promise<T>, seconds = 30): Promise<T> {
  try {
    await within(attach(t), 15, `the broker at ${redactAddress(t.address)}`);
  } catch (err) {
    if (err instanceof WarrenError && err.name === "BrokerUnavailableError") throw err;
    throw new WarrenError(
      `${(err as Error).message}.\n` +
        `Is it running? Start one with \`warren start --head --cluster ${t.cluster}\`, or pass --cluster/--address of one that runs.`,
      { cause: err },
    );
  }
  try {
    return await (seconds === Infinity ? fn() : within(fn(), seconds, `cluster "${t.cluster}"`));
  } finally {
    await shutdown();
  }
}
