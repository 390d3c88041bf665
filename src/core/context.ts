/**
 * core: what a process's runtime knows of itself (RuntimeConfig, set once at start) and of the
 * call it runs now (TaskContext, per call: tasks of one async actor run concurrently, so it
 * lives in AsyncLocalStorage). Nested submissions take their job and namespace from it.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { EncodedError } from "../serialization";

export interface RuntimeConfig {
  address: string;
  cluster: string;
  ownerId: string;
  nodeId: string;
  storePath: string;
  jobId: string;
  namespace: string;
  logToDriver: boolean;
  /** A CLI command asking about a cluster (api/cluster.ts attach) is a driver that runs nothing. */
  role: "driver" | "worker" | "cli";
  /** Durable mode (transport's Topology): a driver that joins a cluster learns it from the head. */
  durable?: boolean;
  /** init({ onInfeasible }): warn (the default) or fail with InfeasibleError. */
  onInfeasible?: "warn" | "error";
}

/** Per-call context inside a worker. */
export interface TaskContext {
  taskId: string;
  taskName: string;
  /** The prefix of its output lines at the driver: the task's name, or the actor's class. */
  logName: string;
  jobId: string;
  namespace: string;
  actorId?: string;
  canceled: boolean;
  /** The GPUs assigned to it (its worker's CUDA_VISIBLE_DEVICES) and the resources it holds. */
  gpuIds: number[];
  resources: Record<string, number>;
  /** Its run, for task events (core/task-events.ts): when it started and ended (ms since the epoch, with fractions), and why it failed. */
  startMs?: number;
  endMs?: number;
  error?: EncodedError;
}

export const taskContext = new AsyncLocalStorage<TaskContext>();
