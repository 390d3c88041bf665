/**
 * node options: every timing, window and threshold of a node daemon, each documented here with
 * its default, as Temporal's worker-options.ts does for its workers. nodeOptions() fills them;
 * the daemon hands each part (scheduler, worker pool, actors) what it reads, so no part keeps a
 * constant of its own. LONG_TASK_MS is shared with the workers and stays in wire/ipc.ts. Also
 * NodeConfig, what a daemon is started with.
 */
import type { Resources } from "../scheduling/shape";
import { countFromEnv } from "../transport";

export interface NodeOptions {
  /**
   * How often a node reports to the head (head/server.ts says how long a silence may last).
   * @default 500
   */
  heartbeatMs: number;
  /**
   * How long a new actor waits for the head to record it ALIVE before it serves calls anyway
   * (a head that is gone answers nothing, and its state API nobody).
   * @default 5000
   */
  headWaitMs: number;
  /**
   * Spillback: a delivery this node cannot start is given back after this long if a peer could
   * start it (scheduler.ts balance).
   * @default 20
   */
  spillMs: number;
  /**
   * Worker leases (worker/lease.ts): a worker holds a slot and takes its shape's tasks from the
   * broker itself, about 3x the pipelined task throughput of handing every task node -> worker
   * over IPC. WARREN_LEASES=0 turns them off (every task then goes through the node).
   * @default true
   */
  leases: boolean;
  /**
   * The consumer priority of a lease held by the worker of rank 0; each next rank one less. The
   * node's own consumers have none (0), so the broker gives a task to the first lease in line with
   * room, and to the node only when all are full (worker/lease.ts). Ranks stop one below it.
   * @default 1000
   */
  leasePriority: number;
  /**
   * The widest window (prefetch) of a node's consumer of one shape, and the number of free slots
   * counted for a shape that demands nothing.
   * @default 256
   */
  maxWindow: number;
  /**
   * Without leases, the most slots of one shape counted in the node's total to size its window
   * (2 per slot, plus 2, at most maxWindow).
   * @default 128
   */
  maxSlots: number;
  /**
   * How many cancelled task ids a node remembers, to drop their deliveries should they come.
   * @default 100_000
   */
  cancelledMemory: number;
  /**
   * How many actors killed for good before this node placed them it remembers, to drop their
   * creations should they come (a creation waits in its shape's queue for as long as it takes).
   * @default 100_000
   */
  killedMemory: number;
  /**
   * The most shared actors (`process: "shared"`) one host process holds; the node starts another
   * host of that shape when every one is full. About 47 KiB of a host's memory per actor.
   * @default 1000
   */
  actorsPerHost: number;
  /**
   * The most ready workers a node keeps idle for what comes next (Ray's worker pool prestarts
   * too). It keeps one per CPU at first; each time a task or actor takes the last idle one it
   * keeps twice as many, up to this, and half as many again after `spareIdleMs` in which none
   * was taken, stopping the spares that never ran anything. WARREN_SPARE_WORKERS sets it.
   * @default 16
   */
  spareWorkers: number;
  /** @default 10_000 */
  spareIdleMs: number;
}

/** A node's options: the defaults, with WARREN_LEASES and WARREN_SPARE_WORKERS read from `env`, then `overrides`. */
export function nodeOptions(env: NodeJS.ProcessEnv = process.env, overrides: Partial<NodeOptions> = {}): NodeOptions {
  return {
    heartbeatMs: 500,
    headWaitMs: 5000,
    spillMs: 20,
    leases: env.WARREN_LEASES !== "0",
    leasePriority: 1000,
    maxWindow: 256,
    maxSlots: 128,
    cancelledMemory: 100_000,
    killedMemory: 100_000,
    actorsPerHost: 1000,
    spareWorkers: countFromEnv("WARREN_SPARE_WORKERS", 16, env),
    spareIdleMs: 10_000,
    ...overrides,
  };
}

/** What a node daemon is started with (by `init()`, `warren start` or the testing Cluster). */
export interface NodeConfig {
  address: string;
  cluster: string;
  nodeId: string;
  isHead: boolean;
  /**
   * Started by a process that owns it (`init()`, the testing Cluster): it goes when that process
   * goes and removes its session directory; a private head also removes the cluster's queues.
   */
  private: boolean;
  resources: Resources;
  sessionDir: string;
  /** Durable mode, set for a head (and a private cluster); a node that joins takes the head's when it registers. */
  durable?: boolean;
  /** For a head: where its web dashboard listens (head/dashboard.ts DashboardOptions; none: no dashboard). */
  dashboard?: { host: string; port?: number };
  /** The port it serves its objects to other nodes on (`warren start --object-manager-port`); unset: one the system picks. */
  objectManagerPort?: number;
}
