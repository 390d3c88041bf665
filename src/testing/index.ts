/**
 * warren/testing: helpers for tests of programs built on warren. `Cluster` starts a head and
 * nodes on this machine, each its own daemon process with its own session directory and LMDB
 * store, sharing nothing but the broker (as nodes on different hosts would).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import type { ChildProcess } from "node:child_process";
import { WarrenError } from "../errors";
import { validateInitOptions } from "../options";
import { brokerAddress } from "../transport";
import { nodeResources } from "../node/resources";
import { startNode } from "../api/cluster";
import { clusterDir } from "../core/paths";
import { dashboardOptions } from "../head/dashboard";

export interface NodeOptions {
  numCpus?: number;
  numGpus?: number;
  memory?: number;
  objectStoreMemory?: number;
  resources?: Record<string, number>;
  /** The head's dashboard port (default: a free one). */
  dashboardPort?: number;
}

export class Cluster {
  private readonly nodes = new Map<string, ChildProcess>();

  private constructor(readonly address: string, readonly cluster: string) {}

  /** Where its nodes keep their session directories (removed by shutdown()). */
  get sessionDir(): string {
    return clusterDir(this.cluster);
  }

  /** Starts a head (and `nodes`), then resolves; pass `{ address, cluster }` to `warren.init()`. */
  static async start(options: { head?: NodeOptions; nodes?: NodeOptions[]; address?: string } = {}): Promise<Cluster> {
    const c = new Cluster(brokerAddress(options.address), `test-${randomBytes(5).toString("hex")}`);
    try {
      await c.startNode(options.head ?? {}, true);
      for (const n of options.nodes ?? []) await c.addNode(n);
    } catch (err) {
      await c.shutdown();
      throw err;
    }
    return c;
  }

  /** Ids of the nodes running now, the head first. */
  get nodeIds(): string[] {
    return [...this.nodes.keys()];
  }

  get headId(): string {
    return this.nodeIds[0];
  }

  /** Adds a node; resolves with its id once it has joined. */
  addNode(options: NodeOptions = {}): Promise<string> {
    return this.startNode(options, false);
  }

  private async startNode(options: NodeOptions, isHead: boolean): Promise<string> {
    const o = validateInitOptions(options);
    const nodeId = randomBytes(20).toString("hex");
    const proc = await startNode({
      address: this.address, cluster: this.cluster, nodeId, isHead, private: true,
      sessionDir: path.join(this.sessionDir, `node_${nodeId.slice(0, 12)}`),
      resources: nodeResources({ numCpus: o.numCpus ?? 1, numGpus: o.numGpus ?? 0, memory: o.memory, objectStoreMemory: o.objectStoreMemory, resources: o.resources }),
      // A test cluster's dashboard takes a free port, never one another cluster may want.
      dashboard: isHead ? dashboardOptions({ dashboardPort: 0, ...o }) : undefined,
    });
    this.nodes.set(nodeId, proc);
    return nodeId;
  }

  /** Stops a node: gracefully (SIGTERM: it stops its workers and leaves) or not (SIGKILL, like a crash). */
  async removeNode(nodeId: string, options: { graceful?: boolean } = {}): Promise<void> {
    const proc = this.nodes.get(nodeId);
    if (!proc) throw new WarrenError(`no node ${nodeId} in this cluster; nodes: ${this.nodeIds.join(", ")}`);
    this.nodes.delete(nodeId);
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((res) => proc.once("exit", res));
    proc.kill(options.graceful === false ? "SIGKILL" : "SIGTERM");
    await exited;
    // A killed node cannot remove its own directory; the machine it stood for is gone anyway.
    fs.rmSync(path.join(this.sessionDir, `node_${nodeId.slice(0, 12)}`), { recursive: true, force: true });
  }

  /** Stops every node, the head last (it removes the cluster's queues and exchanges). */
  async shutdown(): Promise<void> {
    for (const id of this.nodeIds.reverse()) await this.removeNode(id);
    fs.rmSync(this.sessionDir, { recursive: true, force: true });
  }
}

/**
 * Resolves once `condition()` (sync or async) returns true, checking every 10 ms; rejects after
 * `timeout` seconds (default 10). For conditions nothing announces, like a file appearing.
 */
export async function waitForCondition(condition: () => boolean | Promise<boolean>, timeout = 10): Promise<void> {
  const end = Date.now() + timeout * 1000;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > end) throw new WarrenError(`condition not met within ${timeout}s: ${condition.toString().slice(0, 200)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
