/**
 * wire: the IPC messages between a node and its workers (Node's advanced serialization, so
 * Buffers pass as they are), and the configuration a node hands a worker it starts.
 */
import type { EncodedError } from "../serialization";

/** A worker that died, as its node saw it. */
export interface WorkerDeath {
  pid: number;
  /** Its signal, or its exit code. */
  how: string;
  /** Where its output went. */
  log: string;
  /** Its last lines there. */
  tail: string[];
  /** Where that file stays after shutdown (a private cluster's session_latest). */
  kept?: string;
}

/**
 * A task running this long is acked early, once the head knows it runs on this node, so a
 * broker's consumer_timeout never applies to it (node/daemon.ts, and worker/main.ts for leased tasks).
 */
export const LONG_TASK_MS = 10_000;

export interface WorkerConfig {
  address: string;
  cluster: string;
  nodeId: string;
  storePath: string;
  /** The cluster's durable mode (a joining node learns it when it registers, before it starts workers). */
  durable: boolean;
  /** This worker's id (its owner id), given by its node: its log file is named by it and its pid. */
  workerId: string;
  /** The folder of its log file, and the file's rotation (core/log-files.ts). */
  log: { dir: string; maxBytes: number; backups: number };
}

export type NodeToWorker =
  | {
      t: "task"; body: Buffer; tag: number; attempt: number; gpuIds: number[]; resources: Record<string, number>;
      /** After this task, take this shape's tasks from its queue directly until idle (worker/lease.ts). */
      lease?: { queue: string; priority: number };
    }
  | { t: "cancel"; task: string; force: boolean; recursive: boolean }
  /** A job ended (head/server.ts): its deliveries are dropped, and its task running here stops. */
  | { t: "job-ended"; job: string }
  /** A worker of this node that leased `queue` died: say so if a task it held must fail here. */
  | { t: "worker-died"; queue: string; death: WorkerDeath }
  /** The head has heard that the actor `id`, which this worker hosts, is alive: take its calls. */
  | { t: "serve"; id: string }
  /** A shared actor this host process holds is killed: stop taking its calls (actor-stopped). */
  | { t: "stop-actor"; id: string }
  /** The head has heard the long leased task runs here: ack it now. */
  | { t: "ack-long"; task: string };

/**
 * Task names a tally keeps apart, at most; past them the rest count under TALLY_OTHER, so that a
 * name made per call cannot grow a node's metrics without end.
 */
export const TALLY_NAMES = 1000;
export const TALLY_OTHER = "_other";

/** A worker's count of what it ran under one task name (worker/tally.ts), since it started. */
export interface TaskTally {
  name: string;
  running: number;
  finished: number;
  failed: number;
}

export type WorkerToNode =
  | { t: "ready"; pid: number }
  /** What it ran, by task name: every name it has run, sent after a change (node/metrics.ts). */
  | { t: "tally"; tasks: TaskTally[] }
  | { t: "done"; tag: number; retry: boolean }
  | { t: "blocked" }
  | { t: "unblocked" }
  /** The actor's constructor returned and its mailbox is declared. */
  | { t: "actor-alive"; id: string; pid: number }
  /** The actor's constructor threw: the actor is dead with this cause. */
  | { t: "actor-failed"; id: string; error: EncodedError }
  /** exitActor() was called: the actor is done; the worker exits, unless it is a host of shared actors. */
  | { t: "actor-exit"; id: string }
  /** A shared actor told to stop (stop-actor) consumes its mailbox no more, and holds none of its calls. */
  | { t: "actor-stopped"; id: string }
  /** The lease ended: the slot's resources are the node's again. */
  | { t: "lease-returned" }
  /** A leased task runs long: tell the head, then let the worker ack it (ack-long). */
  | { t: "long"; task: string }
  | { t: "long-done"; task: string };
