import type { EncodedError } from "../serialization";

/** The IPC messages between a node and its workers (Node's advanced serialization, so Buffers pass as they are). */

export interface WorkerConfig {
  address: string;
  cluster: string;
  nodeId: string;
  storePath: string;
}

export type NodeToWorker =
  | { t: "task"; body: Buffer; tag: number; attempt: number; maxRetries: number; gpuIds: number[]; resources: Record<string, number> }
  | { t: "cancel"; task: string; recursive: boolean };

export type WorkerToNode =
  | { t: "ready"; pid: number }
  | { t: "done"; tag: number; retry: boolean }
  | { t: "blocked" }
  | { t: "unblocked" }
  /** The actor's constructor returned and its mailbox is consumed. */
  | { t: "actor-alive"; pid: number }
  /** The actor's constructor threw: the actor is dead with this cause. */
  | { t: "actor-failed"; error: EncodedError }
  /** exitActor() was called: the actor is done, the worker exits. */
  | { t: "actor-exit" };
