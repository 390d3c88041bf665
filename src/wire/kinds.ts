/**
 * wire: the kinds of message warren sends, carried in the AMQP `type` property so a consumer
 * dispatches without decoding, and the shape of every request's answer.
 */
import type { EncodedError } from "../serialization";

export const Kind = {
  result: "result",
  log: "log",
  objectRequest: "objreq",
  objectReply: "objrep",
  shape: "shape",
  cancel: "cancel",
  stop: "stop",
  reply: "reply",
  killActor: "kill-actor",
  actorDead: "actor-dead",
  nodeDead: "node-dead",
  tasksLost: "tasks-lost",
  stateQuery: "state",
  fetchObject: "object.fetch",
  objectEndpoint: "object.endpoint",
  freeObject: "object.free",
  infeasible: "infeasible",
  jobEnded: "job-ended",
} as const;

/** The answer to a request (to the head, a node, or a process asked for its state). */
export type RpcReply<T = unknown> = { ok: true; value: T } | { ok: false; error: EncodedError };

/**
 * One process's answer to a broadcast state query: its rows, and the processes it knows are
 * alive (`vouch`, id -> who), so the asker waits for exactly those: the head names the alive
 * nodes and running drivers, a node its ready workers.
 */
export interface StateAnswer {
  /** An owner id, or `node:<id>` for a node daemon. */
  from: string;
  rows: unknown[];
  vouch?: Record<string, string>;
  /** The head answered (it is in this node daemon). */
  head?: boolean;
}

/** What the state API shows of a task besides its state (Ray's columns). */
export interface TaskInfo {
  task_id: string;
  name: string;
  func_or_class_name: string;
  type: "NORMAL_TASK" | "ACTOR_TASK" | "ACTOR_CREATION_TASK";
  job_id: string;
  actor_id: string | null;
  parent_task_id: string | null;
  required_resources: string;
  start_time_ms: number;
  end_time_ms: number | null;
  error_type: string | null;
  error_message: string | null;
}
