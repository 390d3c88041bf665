/**
 * wire: what the head (head/) answers, as one typed map from request kind to payload and reply,
 * and the records those carry. Clients (transport/rpc.ts) and the head's server are both typed
 * by it, so a request and its handler cannot disagree on a field. Requests to one node
 * (NodeRequests) travel the same way, to that node's control queue.
 */
import type { EncodedError } from "../serialization";
import type { Resources } from "../scheduling/shape";
import type { HandleInfo } from "./descriptors";
import type { Filter } from "./filters";
import type { TaskEntry, TaskEventBatch } from "./task-events";

/** An actor's states (lifecycle/actor.ts is the machine the head keeps them in). */
export type ActorState = "PENDING_CREATION" | "ALIVE" | "RESTARTING" | "DEAD";

/** What a node reports of an actor it hosts. */
export type ActorEvent =
  | { type: "ALIVE"; nodeId: string; pid: number }
  | { type: "RESTARTING" }
  | { type: "DEAD"; cause: EncodedError };

/** An actor's creation message, kept by the head to restart the actor if its node dies. */
export interface ActorCreationMessage {
  body: Buffer;
  routingKey: string;
  headers: Record<string, any>;
  messageId: string;
  type: string;
}

export interface RegisterActor {
  handle: HandleInfo;
  /** The creator's owner id: a non-detached actor dies with it. */
  owner: string;
  name?: string;
  namespace: string;
  getIfExists: boolean;
  detached: boolean;
  /** The job it belongs to (its creator's): a non-detached actor dies when that job ends. */
  job: string;
}

/** A job as the state API lists it (Ray's columns): the work of one driver. */
export interface JobRow {
  job_id: string;
  type: "DRIVER";
  status: "RUNNING" | "SUCCEEDED" | "FAILED";
  entrypoint: string;
  message: string | null;
  start_time: number;
  end_time: number | null;
  driver_pid: number;
  driver_node_hostname: string;
}

/** What a driver says of itself when its job starts. */
export type JobStart = Pick<JobRow, "job_id" | "entrypoint" | "driver_pid" | "driver_node_hostname">;

/** The head's word (on the control exchange, `all.job-ended`) that a job ended: its work stops. */
export interface JobEnded {
  jobId: string;
}

/** The answer to a registration: the actor the caller should use (another one if the name existed). */
export type Registered = { created: boolean; handle: HandleInfo };

/** What a node tells the head when it starts. */
export interface NodeInfo {
  nodeId: string;
  isHead: boolean;
  ip: string;
  hostname: string;
  storePath: string;
  metricsPort: number;
  /** Where the node serves its objects to other nodes (node/object-server.ts). */
  objectManager: { host: string; port: number };
  resources: Resources;
  /** The head's web dashboard (head/dashboard.ts), when it serves one. */
  dashboardUrl?: string;
}

/** One entry of `nodes()`: Ray's fields. */
export interface NodeSummary {
  NodeID: string;
  Alive: boolean;
  NodeManagerAddress: string;
  NodeManagerHostname: string;
  ObjectStorePath: string;
  MetricsExportPort: number;
  ObjectManagerPort: number;
  Resources: Resources;
  IsHead: boolean;
  /** The head's only, when it serves a dashboard. */
  DashboardURL?: string;
}

/** A node's report to the head: what is free, and which tasks run there with their delivery acked. */
export interface Heartbeat {
  nodeId: string;
  available: Resources;
  acked: string[];
}

/** The head's word (on the control exchange, `all.infeasible`) that no alive node can run a shape: what each has. */
export interface InfeasibleNotice {
  shape: string;
  nodes: Resources[];
}

/** Another alive node and what it had free at its last heartbeat (for spillback). */
export interface Peer {
  nodeId: string;
  available: Resources;
}

export interface ActorInfo {
  state: ActorState;
  cause?: EncodedError;
  className?: string;
}

/** What waits in a shape's queue, and whether any alive node could ever run it. */
export interface ShapeDemand {
  shape: string;
  pending: number;
  infeasible: boolean;
}

/** An actor as the state API lists it: Ray's columns. */
export type ActorRow = {
  actor_id: string;
  class_name: string;
  state: ActorState;
  name: string;
  ray_namespace: string;
  node_id: string | null;
  pid: number | null;
  num_restarts: number;
  is_detached: boolean;
  death_cause: string | null;
};

type None = Record<string, never>;

/** Request kind -> [payload, reply]. */
export interface HeadRequests {
  "actor.register": [RegisterActor, Registered];
  "actor.get": [{ name: string; namespace: string }, HandleInfo | null];
  "actor.event": [{ id: string; event: ActorEvent; creation?: ActorCreationMessage }, void];
  "actor.info": [{ id: string }, ActorInfo | null];
  /** warren.kill(): answered once the actor's incarnation is over (head/server.ts kill). */
  "actor.kill": [{ id: string; noRestart: boolean; why?: string }, void];
  "actor.list": [None, ActorRow[]];
  "job.start": [JobStart, void];
  /** A driver's own end (shutdown()); one that exits without it is found by its inbox, gone. */
  "job.end": [{ jobId: string }, void];
  "job.list": [None, JobRow[]];
  /** `dead`: the head declared this node dead before; it is not registered again (it exits). */
  "node.register": [NodeInfo, { shapes: string[]; durable: boolean; dead: boolean }];
  "cluster.info": [None, { durable: boolean }];
  /**
   * `known`: whether the head has the node registered (a head started without its registry does
   * not); `dead`: whether it has the node as dead (it then exits).
   */
  "node.heartbeat": [Heartbeat, { peers: Peer[]; known: boolean; dead: boolean }];
  "node.running": [{ nodeId: string; task: string }, void];
  /** What a node has free, told at once when an actor there takes or gives back what it holds. */
  "node.available": [{ nodeId: string; available: Resources }, void];
  "node.list": [None, NodeSummary[]];
  "node.acked": [{ nodeId: string }, string[]];
  "shape.list": [None, string[]];
  "shape.infeasible": [None, string[]];
  "shape.demand": [None, ShapeDemand[]];
  "resources.total": [None, Resources];
  "resources.available": [None, Resources];
  /** A process's task events (core/task-events.ts); no answer. */
  "task.events": [TaskEventBatch, void];
  /**
   * The kept history (head/events.ts), newest first: at most `limit` tasks first recorded before
   * `before` (none: from the newest) whose merged row passes `filters`; `next` is the `before` of
   * the following page, if any. Besides them, whatever filters say, the entries of tasks `ids`
   * (the asker has live rows of them, to merge with the history's).
   */
  "task.history": [{ limit: number; before?: number; filters?: Filter[]; ids?: string[] }, { entries: TaskEntry[]; next?: number }];
}

/** A worker process of a node, as the dashboard's machine view shows it. */
export interface WorkerRow {
  pid: number;
  /** STARTING (not ready yet), IDLE, BUSY (a task or a lease), ACTOR (hosting one) or ACTOR_HOST (shared actors). */
  state: "STARTING" | "IDLE" | "BUSY" | "ACTOR" | "ACTOR_HOST";
  /** Its process title as `ps` shows it (`warren::<task name>`); null where it cannot be read. */
  title: string | null;
  /** The actor it hosts; null for a host of shared actors (the actors list has them, by pid). */
  actor_id: string | null;
}

/** Where a log file's lines come from (core/log-files.ts markers). */
export interface LogSource {
  stream: "stdout" | "stderr";
  /** What the driver prints before them: the task's name, or the actor's class. */
  name?: string;
  job?: string;
  task?: string;
  actor?: string;
}

/** Where a reader of a log file stopped: the next byte, and the source there. */
export interface LogPosition {
  offset: number;
  source?: LogSource;
}

/** `warren logs` asks a node: the last `tail` lines of its files (of one task or actor), or what is new since `follow`. */
export interface LogsRequest {
  tail: number;
  task?: string;
  actor?: string;
  /** By file name: where the last answer stopped. */
  follow?: Record<string, LogPosition>;
}

export interface LogFileLines extends LogPosition {
  file: string;
  pid: number;
  /** Prefixed as the driver prints them: `(name pid=N) text`. */
  lines: string[];
}

/** Request kind -> [payload, reply], for requests to one node. */
export interface NodeRequests {
  /**
   * A chunk of a stored object, the fallback path (chunks well under max_message_size); `from`:
   * the asker's node, which keeps a copy ("" for none).
   */
  "object.fetch": [{ id: string; offset: number; length: number; from: string }, { chunk: Uint8Array }];
  /** Where the node streams its objects from (ObjectManagerPort). */
  "object.endpoint": [Record<string, never>, { host: string; port: number }];
  "node.workers": [None, WorkerRow[]];
  "logs.read": [LogsRequest, LogFileLines[]];
}

export type HeadRequest = keyof HeadRequests;
export type NodeRequest = keyof NodeRequests;
export type PayloadOf<M, K extends keyof M> = M[K] extends [infer P, unknown] ? P : never;
export type ReplyOf<M, K extends keyof M> = M[K] extends [unknown, infer R] ? R : never;

/** What serves a map of requests: a handler per kind, from its payload to its reply. */
export type Handlers<M> = { [K in keyof M]: (payload: PayloadOf<M, K>) => ReplyOf<M, K> | Promise<ReplyOf<M, K>> };
