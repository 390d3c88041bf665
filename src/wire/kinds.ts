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
  objectRelease: "objrel",
  objectHeld: "objheld",
  shape: "shape",
  cancel: "cancel",
  stop: "stop",
  reply: "reply",
  killActor: "kill-actor",
  actorDead: "actor-dead",
  nodeDead: "node-dead",
  tasksLost: "tasks-lost",
  stateQuery: "state",
  /** An owner back from an outage in durable mode asks workers for the results of these tasks again. */
  resultsWanted: "results-wanted",
  fetchObject: "object.fetch",
  nodeWorkers: "node.workers",
  objectEndpoint: "object.endpoint",
  freeObject: "object.free",
  infeasible: "infeasible",
  jobEnded: "job-ended",
  readLogs: "logs.read",
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
