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
  fetchObject: "object.fetch",
  freeObject: "object.free",
  infeasible: "infeasible",
  jobEnded: "job-ended",
} as const;

/** The answer to a request (to the head, a node, or a process asked for its state). */
export type RpcReply<T = unknown> = { ok: true; value: T } | { ok: false; error: EncodedError };
