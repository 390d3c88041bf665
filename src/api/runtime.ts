/**
 * api: what a user calls (init, remote, get, wait, put, cancel) and the per-process runtime
 * behind it (Ray's "core worker"): every driver and every worker has one. It owns the objects it
 * creates, submits tasks to the shape-keyed exchange, and answers borrowers through its inbox.
 */
import { BoundedMap } from "../bounded";
import * as v8 from "node:v8";
import { AsyncLocalStorage } from "node:async_hooks";
import type * as amqp from "amqplib";
import * as path from "node:path";
import { createSyncFn } from "synckit";
import { ActorDiedError, GetTimeoutError, NodeDiedError, ObjectLostError, TaskCancelledError, WarrenError } from "../errors";
import { Topology, connectBroker, watchChannel } from "../transport";
import { Kind, RpcReply } from "../wire/kinds";
import { CLOSE_SYNC_RPC, RpcClient } from "../transport/rpc";
import type { HeadRequest, HeadRequests, PayloadOf, ReplyOf } from "../wire/head";
import { publishSmall } from "../transport/frames";
import { ObjectRef } from "../objects/ref";
import { TaskIds, objectId } from "../wire/ids";
import { ObjectStore } from "../objects/store";
import { OwnerTable } from "../objects/owner";
import { EncodedError, byteLength, decode, decodeError, encode, encodeError, findInstances, hasMarkers, joined } from "../serialization";
import { ResultMessage, StoredObject, TaskHead, decodeResults, encodeArgs, encodeHead, encodeTask } from "../wire/messages";
import { mayRetry } from "../scheduling/retry";
import { INITIAL_TASK_STATE, TaskState, nextTaskState } from "../lifecycle/task";
import type { Descriptor } from "../wire/descriptors";

export type { ActorCreation, ResultMessage, TaskSpec } from "../wire/messages";
import { ActorHandleCore } from "./handle";
import { compiled } from "./paths";

/**
 * Values up to this size travel inline in messages; larger ones go to the node's LMDB store.
 * Measured here (a task returning N bytes, round trip): inline wins up to 128 KB (1.76 ms vs
 * 1.99), the store from 512 KB (2.7 ms vs 4.1; at 2 MB 5.2 vs 11.9). Ray's 100 KiB sits just
 * below that crossover and keeps large bodies out of the broker's memory.
 */
export const INLINE_MAX = 100 * 1024;

export interface RuntimeConfig {
  address: string;
  cluster: string;
  ownerId: string;
  nodeId: string;
  storePath: string;
  jobId: string;
  namespace: string;
  logToDriver: boolean;
  role: "driver" | "worker";
}

/** Everything `.remote()` needs that does not change per call, computed once by `.options()`. */
export interface TaskTemplate {
  fn: Descriptor;
  name: string;
  shape: string;
  numReturns: number;
  maxRetries: number;
  retryExceptions: boolean;
  /** The actor an actor call or creation is for. */
  actor?: TaskHead["actor"];
  /** Its head's bytes (serialization/messages.ts) for the job that last submitted it. */
  head?: { job: string; namespace: string; bytes: Buffer };
}

interface TaskRecord {
  /** Its lifecycle state, moved by the task machine (lifecycle/task.ts). */
  state: TaskState;
  returns: string[];
  name: string;
  /** For the state API. */
  info: TaskInfo;
  /** The actor an actor call goes to. */
  actorId?: string;
  /** What was published, kept to publish again if the node running it dies. */
  sent?: Sent;
  /** Once ended: which attempt it was (`sent` is dropped then, its body being most of a record). */
  attempt?: number;
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

/** A published task message: enough to publish it again. */
interface Sent {
  exchange: string;
  key: string;
  body: Buffer;
  name: string;
  /** Attempts before this one; sent as the `attempt` header when not 0. */
  attempt: number;
  maxRetries: number;
  headers?: Record<string, unknown>;
}

/** Per-call context inside a worker (tasks of one async actor run concurrently). */
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
}

export const taskContext = new AsyncLocalStorage<TaskContext>();

export class Runtime {
  private static active?: Runtime;
  readonly topo: Topology;
  readonly owned = new OwnerTable();
  private readonly ids: TaskIds;
  private readonly tasks = new Map<string, TaskRecord>();
  /**
   * Lineage: how to make again the objects of finished tasks whose values sit in a node's store
   * (the message they were published as), should that node die. Bounded, oldest dropped first.
   */
  private readonly lineage = new BoundedMap<string, { sent: Sent; returns: string[]; name: string; info: TaskInfo }>(LINEAGE_KEPT);
  /** Final states of recently ended tasks, oldest first, for state queries. */
  private readonly ended = new BoundedMap<string, TaskRecord>(ENDED_KEPT);
  private readonly requests = new Map<string, Promise<StoredObject>>();
  private readonly replyWaiters = new Map<string, (value: StoredObject) => void>();
  private readonly shapes = new Map<string, Promise<void>>();
  /** Unfinished calls per actor, failed at once if the actor's death is announced. */
  private readonly actorCalls = new Map<string, Set<string>>();
  /** Actors known dead, with why: calls to them fail without being sent. */
  private readonly deadActors = new BoundedMap<string, EncodedError>(DEAD_ACTORS_KEPT);
  /** Actors this process created, while their mailbox is being declared (then DECLARED). */
  readonly mailboxes = new Map<string, Promise<void>>();
  /** Requests to the head and to nodes, answered to this process's inbox. */
  readonly rpc: RpcClient;
  private syncRpc?: (address: string, cluster: string, kind: string, payload: unknown) => RpcReply;
  private store?: ObjectStore;
  private closed = false;
  /** Set when the cluster this driver started is gone: every later call fails with it. */
  private lost?: Error;
  /** Set by a worker: told when a `get` blocks and unblocks, so the node can lend the CPU. */
  blockHooks?: { block(): void; unblock(): void };
  /** Set by a worker: the tasks it runs, for state queries (a leased task's node does not see it). */
  runningRows?: () => Record<string, unknown>[];
  /** Set by an actor's worker: what exitActor() does. */
  onExitActor?: () => void;
  private readonly freer = new FinalizationRegistry<string>((id) => this.freePrivate(id));

  private constructor(
    readonly config: RuntimeConfig,
    readonly conn: amqp.ChannelModel,
    readonly ch: amqp.Channel,
  ) {
    this.topo = new Topology(config.cluster);
    this.ids = new TaskIds(config.ownerId);
    this.rpc = new RpcClient(ch, this.topo, this.topo.inbox(config.ownerId));
  }

  static get current(): Runtime {
    const rt = Runtime.active;
    if (!rt) throw new WarrenError("warren is not initialized: call `await warren.init()` first");
    return rt;
  }

  static get isActive(): boolean {
    return Runtime.active !== undefined;
  }

  static async start(config: RuntimeConfig): Promise<Runtime> {
    const conn = await connectBroker(config.address, `warren ${config.role} ${config.ownerId}`);
    const ch = await conn.createChannel();
    const rt = new Runtime(config, conn, ch);
    watchChannel(ch, (reason) => rt.channelLost(reason));
    ch.on("return", (msg: amqp.Message) => rt.onReturned(msg));
    await rt.topo.declare(ch);
    const inbox = rt.topo.inbox(config.ownerId);
    await ch.assertQueue(inbox, { exclusive: true, autoDelete: true });
    if (config.role === "driver" && config.logToDriver) await ch.bindQueue(inbox, rt.topo.logs, config.jobId);
    await ch.bindQueue(inbox, rt.topo.control, "all.actor-dead");
    await ch.bindQueue(inbox, rt.topo.control, "all.state");
    await ch.bindQueue(inbox, rt.topo.control, "all.node-dead");
    await ch.consume(inbox, (msg) => msg && rt.onInbox(msg), { noAck: true });
    Runtime.active = rt;
    return rt;
  }

  get inbox(): string {
    return this.topo.inbox(this.config.ownerId);
  }

  // ---- submission ------------------------------------------------------------------------

  /**
   * Submits a task (to its shape's queue) or an actor call or creation (`route`). A task waits
   * for arguments this process owns (PENDING_ARGS_AVAIL) so it never holds a worker idle; routed
   * messages keep submission order instead and leave pending refs for the actor to resolve.
   */
  submit(t: TaskTemplate, args: unknown[], route?: Route): ObjectRef[] {
    this.ensureOpen();
    const taskId = this.ids.next();
    const ctx = taskContext.getStore();
    const head = this.headOf(t, ctx);
    // Values of ref arguments known now travel with it; those this process owns and awaits are
    // added when ready (the arguments themselves are copied now, into `argBytes`, as in Ray).
    let refs: { refArgs: number[]; resolved: Record<number, StoredObject> } | undefined;
    const resolveLater: number[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (!(a instanceof ObjectRef)) continue;
      refs ??= { refArgs: [], resolved: {} };
      refs.refArgs.push(i);
      const now = this.owned.peek(a.hex());
      if (now) refs.resolved[i] = now;
      else if (!route && this.owned.has(a.hex())) resolveLater.push(i);
    }
    const argBytes = encodeArgs(args, t.name);
    const returns: string[] = [];
    for (let i = 1; i <= t.numReturns; i++) {
      const id = objectId(taskId, i);
      returns.push(id);
      this.owned.pending(id);
    }
    const actor = t.actor;
    const callee = actor?.method !== undefined ? actor.id : undefined;
    const info: TaskInfo = {
      task_id: taskId, name: t.name, func_or_class_name: actor?.create ? t.fn.name : actor?.method ? `${t.fn.name}.${actor.method}` : t.fn.name,
      type: actor?.create ? "ACTOR_CREATION_TASK" : actor ? "ACTOR_TASK" : "NORMAL_TASK",
      job_id: ctx?.jobId ?? this.config.jobId, actor_id: actor?.id ?? null, parent_task_id: ctx?.taskId ?? null,
      required_resources: t.shape, start_time_ms: Date.now(), end_time_ms: null, error_type: null, error_message: null,
    };
    this.tasks.set(taskId, { state: INITIAL_TASK_STATE, returns, name: t.name, actorId: callee, info });
    if (callee) {
      const dead = this.deadActors.get(callee);
      if (dead) {
        this.failTask(taskId, dead);
        return returns.map((id) => this.track(new ObjectRef(id)));
      }
      let calls = this.actorCalls.get(callee);
      if (!calls) this.actorCalls.set(callee, (calls = new Set()));
      calls.add(taskId);
    }
    const waits: Promise<unknown>[] = [];
    if (hasMarkers(argBytes)) waits.push(...this.escape(args));
    for (const i of resolveLater) {
      waits.push(new Promise<void>((res) => this.owned.onReady((args[i] as ObjectRef).hex(), (v) => { refs!.resolved[i] = v; res(); })));
    }
    const publish = () => {
      const rec = this.tasks.get(taskId);
      if (!rec) return; // cancelled while waiting
      rec.state = nextTaskState(rec.state, "ARGS_READY");
      rec.sent = {
        exchange: route ? route.exchange : this.topo.tasks, key: route ? route.key : t.shape, body: encodeTask(head, taskId, argBytes, refs),
        name: t.name, attempt: 0, maxRetries: t.maxRetries, headers: route?.headers,
      };
      this.send(taskId, rec.sent);
    };
    if (route?.after) waits.push(route.after);
    else if (!route && this.shapes.get(t.shape) !== DECLARED) waits.push(this.ensureShape(t.shape));
    if (waits.length === 0) publish();
    else Promise.all(waits).then(publish, (err) => this.failTask(taskId, encodeError(err)));
    return returns.map((id) => this.track(new ObjectRef(id)));
  }

  /** The bytes of a template's head for the job submitting now: the caller's task's, else this driver's. */
  private headOf(t: TaskTemplate, ctx: TaskContext | undefined): Buffer {
    const job = ctx ? ctx.jobId : this.config.jobId;
    const namespace = ctx ? ctx.namespace : this.config.namespace;
    if (t.head?.job !== job || t.head.namespace !== namespace) {
      const { fn, name, numReturns, maxRetries, retryExceptions, actor } = t;
      t.head = { job, namespace, bytes: encodeHead({ job, namespace, fn, name, numReturns, maxRetries, retryExceptions, actor }) };
    }
    return t.head.bytes;
  }

  private send(taskId: string, m: Sent): void {
    const props = { messageId: taskId, type: m.name, mandatory: m.exchange === "" };
    if (m.attempt === 0 && !m.headers) return publishSmall(this.ch, m.exchange, m.key, m.body, props);
    this.ch.publish(m.exchange, m.key, m.body, { ...props, headers: { ...m.headers, attempt: m.attempt } });
  }

  /**
   * The head reports tasks that were running on a node that died (their deliveries were already
   * acked, see node/daemon.ts): publish each again while retries last, else fail it.
   */
  private onTasksLost(lost: { nodeId: string; tasks: string[] }): void {
    for (const taskId of lost.tasks) {
      const rec = this.tasks.get(taskId);
      if (!rec?.sent) continue;
      const { attempt, maxRetries } = rec.sent;
      if (mayRetry(attempt, maxRetries)) {
        rec.sent.attempt++;
        this.send(taskId, rec.sent);
      } else {
        const err = new NodeDiedError(`the node ${lost.nodeId} running ${rec.name} died, and maxRetries (${maxRetries}) retries were used`);
        this.failTask(taskId, encodeError(err));
      }
    }
  }

  /**
   * Marks refs inside a value as escaped (another process may hold them now) and returns the
   * mailboxes of actor handles in it that this process is still declaring.
   */
  escape(value: unknown): Promise<void>[] {
    for (const r of findInstances(value, ObjectRef)) this.owned.markEscaped(r.hex());
    const waits: Promise<void>[] = [];
    for (const h of findInstances(value, ActorHandleCore)) {
      const p = this.mailboxes.get(h.actorId);
      if (p && p !== DECLARED) waits.push(p);
    }
    return waits;
  }

  /** Declares a shape's queue once per process and tells the nodes it exists. */
  ensureShape(shape: string): Promise<void> {
    let p = this.shapes.get(shape);
    if (!p) {
      p = (async () => {
        const q = this.topo.shapeQueue(shape);
        await this.ch.assertQueue(q, { durable: false, autoDelete: false });
        await this.ch.bindQueue(q, this.topo.tasks, shape);
        this.ch.publish(this.topo.control, "all.shape", Buffer.from(shape), { type: Kind.shape });
        this.shapes.set(shape, DECLARED);
      })();
      this.shapes.set(shape, p);
    }
    return p;
  }

  private track(ref: ObjectRef): ObjectRef {
    this.freer.register(ref, ref.hex());
    return ref;
  }

  /** A ref this process no longer holds: free it if no message ever carried it. */
  private freePrivate(id: string): void {
    const value = this.owned.releaseIfPrivate(id);
    if (value && "node" in value && !this.closed) this.freeStored(id, value.node);
  }

  /** Removes a stored object from the node that holds it. */
  private freeStored(id: string, nodeId: string): void {
    if (nodeId === this.config.nodeId) this.localStore().remove(id);
    else this.ch.publish(this.topo.control, `node.${nodeId}`, v8.serialize({ id }), { type: Kind.freeObject });
  }

  put(value: unknown): ObjectRef {
    this.ensureOpen();
    const id = objectId(this.ids.next(), 0);
    const bytes = encode(value, "the value passed to put()");
    if (hasMarkers(bytes)) this.escape(value);
    this.owned.ready(id, this.storeValue(id, bytes));
    return this.track(new ObjectRef(id));
  }

  /** Inline if small, else into this node's LMDB (committed before anyone hears of it). */
  storeValue(id: string, parts: Buffer[]): StoredObject {
    const size = byteLength(parts);
    if (size <= INLINE_MAX) return { inline: joined(parts) };
    this.localStore().putSync(id, parts);
    return { node: this.config.nodeId, size };
  }

  localStore(): ObjectStore {
    return (this.store ??= ObjectStore.open(this.config.storePath));
  }

  // ---- results ---------------------------------------------------------------------------

  private onInbox(msg: amqp.ConsumeMessage): void {
    switch (msg.properties.type) {
      case Kind.result: {
        for (const r of decodeResults(msg.content)) this.onResult(r);
        return;
      }
      case Kind.log: return printLog(v8.deserialize(msg.content));
      case Kind.objectRequest: return this.onObjectRequest(v8.deserialize(msg.content));
      case Kind.actorDead: return this.onActorDead(v8.deserialize(msg.content));
      case Kind.tasksLost: return this.onTasksLost(v8.deserialize(msg.content));
      case Kind.nodeDead: return this.onNodeDead(v8.deserialize(msg.content));
      case Kind.stateQuery: return this.answerState(msg);
      case Kind.reply: return this.rpc.settle(msg);
      case Kind.objectReply: {
        const { id, value } = v8.deserialize(msg.content);
        this.replyWaiters.get(id)?.(value);
        this.replyWaiters.delete(id);
        return;
      }
    }
  }

  onResult(r: ResultMessage): void {
    const rec = this.tasks.get(r.task);
    if (!rec) return; // cancelled, or a late duplicate after a retry
    this.tasks.delete(r.task);
    if (rec.actorId) {
      const calls = this.actorCalls.get(rec.actorId);
      calls?.delete(r.task);
      if (calls?.size === 0) this.actorCalls.delete(rec.actorId);
    }
    if (r.error) {
      rec.state = nextTaskState(rec.state, "FAIL");
      for (const id of rec.returns) this.settle(id, { error: r.error });
    } else {
      rec.state = nextTaskState(rec.state, "FINISH");
      rec.returns.forEach((id, i) => this.settle(id, r.returns![i]));
      if (rec.sent && r.returns!.some((v) => "node" in v)) {
        this.lineage.set(r.task, { sent: rec.sent, returns: rec.returns, name: rec.name, info: rec.info });
      }
    }
    // Completed in place: a copy per finished task was most of this function's cost.
    rec.info.end_time_ms = Date.now();
    if (r.error) {
      rec.info.error_type = r.error.name ?? null;
      rec.info.error_message = r.error.message.split("\n")[0];
    }
    rec.attempt = rec.sent?.attempt ?? 0;
    rec.sent = undefined;
    this.ended.set(r.task, rec);
  }

  private settle(id: string, value: StoredObject): void {
    // The caller dropped the ref before the result came: free a stored copy nobody will read.
    if (!this.owned.resolve(id, value) && "node" in value) this.freeStored(id, value.node);
  }

  /** Answers a state query (api/state.ts): this process's tasks, or the objects it owns. */
  private answerState(msg: amqp.ConsumeMessage): void {
    const { what } = v8.deserialize(msg.content) as { what: "tasks" | "objects" };
    const rows = what === "tasks"
      ? [
          ...(this.runningRows?.() ?? []),
          ...[...this.tasks.values(), ...this.ended.values()].map((r) => ({ ...r.info, state: r.state, attempt_number: r.attempt ?? r.sent?.attempt ?? 0 })),
        ]
      : this.owned.rows().map((o) => ({ ...o, owner_pid: process.pid, owner_id: this.config.ownerId, job_id: this.config.jobId }));
    const reply: RpcReply = { ok: true, value: rows.slice(-STATE_ROWS) };
    this.ch.publish("", msg.properties.replyTo, v8.serialize(reply), { type: Kind.reply, correlationId: msg.properties.correlationId });
  }

  /** A node died: requests to it (object fetches) will never be answered. */
  private onNodeDead(d: { nodeId: string }): void {
    this.rpc.nodeDied(d.nodeId);
  }

  private onActorDead(d: { id: string; cause: EncodedError }): void {
    this.deadActors.set(d.id, d.cause);
    for (const taskId of this.actorCalls.get(d.id) ?? []) this.failTask(taskId, d.cause);
  }

  failTask(taskId: string, error: ReturnType<typeof encodeError>): void {
    this.onResult({ task: taskId, error });
  }

  /** The state of a task this process submitted, from its lifecycle machine. */
  taskState(taskId: string): string | undefined {
    return this.tasks.get(taskId)?.state ?? this.ended.get(taskId)?.state;
  }

  // ---- borrowing -------------------------------------------------------------------------

  private onObjectRequest(req: { id: string; replyTo: string }): void {
    const reply = (value: StoredObject) =>
      this.ch.publish("", req.replyTo, v8.serialize({ id: req.id, value }), { type: Kind.objectReply });
    if (!this.owned.onReady(req.id, reply)) {
      reply({ error: encodeError(new ObjectLostError(`object ${req.id} is unknown to its owner (freed, or the owner restarted)`)) });
    }
  }

  /** A message the broker could not route: its destination queue is gone. */
  private onReturned(msg: amqp.Message): void {
    const p = msg.properties;
    if (p.type === Kind.objectRequest) {
      const { id } = v8.deserialize(msg.content);
      const err = new ObjectLostError(`the owner of ObjectRef(${id}) has exited, so the object is lost`);
      this.replyWaiters.get(id)?.({ error: encodeError(err) });
      this.replyWaiters.delete(id);
    } else if (this.rpc.returned(msg)) {
      return;
    } else if (msg.fields.routingKey.startsWith(this.topo.mailbox(""))) {
      void this.failDeadActorCall(msg.fields.routingKey.slice(this.topo.mailbox("").length), p.messageId, p.type);
    }
  }

  /** A call to an actor whose mailbox is gone (a handle older than this process): ask the head why. */
  private async failDeadActorCall(actorId: string, taskId: string, name: string): Promise<void> {
    const info = await this.rpc.head("actor.info", { id: actorId }).catch(() => null);
    const error = info?.cause ?? encodeError(new ActorDiedError(`the actor ${actorId} is dead, so ${name} cannot run`));
    this.failTask(taskId, error);
  }

  // ---- requests to the head --------------------------------------------------------------

  /**
   * A request answered before this returns, for the few calls the API makes synchronous (creating
   * a named actor must throw at once if the name is taken). A worker thread does the round trip
   * while this thread blocks on it (synckit); it connects on first use.
   */
  rpcSync<K extends HeadRequest>(kind: K, payload: PayloadOf<HeadRequests, K>): ReplyOf<HeadRequests, K> {
    this.ensureOpen();
    this.syncRpc ??= createSyncFn(compiled(path.join(__dirname, "..", "state", "sync-rpc.js")), { timeout: 30_000 });
    const r = this.syncRpc(this.config.address, this.config.cluster, kind, payload);
    if (!r.ok) throw decodeError(r.error);
    return r.value as ReplyOf<HeadRequests, K>;
  }

  /**
   * Where an object's value is: returned if known now, else given to `then` once known, from
   * this process's table or from the object's owner (asked through its inbox).
   */
  locate(ref: ObjectRef, then: (where: StoredObject) => void): StoredObject | undefined {
    const id = ref.hex();
    const local = this.owned.peek(id);
    if (local) return local;
    if (this.owned.has(id)) {
      this.owned.onReady(id, then);
      return undefined;
    }
    let p = this.requests.get(id);
    if (!p) {
      p = new Promise<StoredObject>((res) => this.replyWaiters.set(id, res)).finally(() => this.requests.delete(id));
      this.requests.set(id, p);
      this.ch.publish("", this.topo.inbox(ref.ownerId), v8.serialize({ id, replyTo: this.inbox }), {
        type: Kind.objectRequest,
        mandatory: true,
      });
    }
    void p.then(then);
    return undefined;
  }

  /** `locate` as a promise. */
  located(ref: ObjectRef): Promise<StoredObject> {
    return new Promise((resolve) => {
      const now = this.locate(ref, resolve);
      if (now) resolve(now);
    });
  }

  /** The value of a stored object: inline, in this node's store, or fetched from the node holding it. */
  async materialize(value: StoredObject, id: string): Promise<unknown> {
    if ("inline" in value) return decode(value.inline);
    if ("error" in value) throw decodeError(value.error);
    const local = this.config.storePath ? this.localStore().view(id) : undefined;
    if (local) return decode(local);
    if (value.node === this.config.nodeId) throw new ObjectLostError(`ObjectRef(${id}) is no longer in the object store of node ${value.node}`);
    const bytes = await this.fetch(value.node, id, value.size);
    if (this.config.storePath) this.localStore().putSync(id, [bytes]); // a copy for this node's other processes
    return decode(bytes);
  }

  /**
   * Copies an object from the node holding it, in chunks well under the broker's message size
   * limit (16 MiB from RabbitMQ 4.0), a few requests in flight at once.
   */
  private async fetch(nodeId: string, id: string, size: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(size);
    let next = 0;
    const worker = async () => {
      while (next < size) {
        const offset = next;
        next += FETCH_CHUNK;
        const { chunk } = await this.rpc.node(nodeId, "object.fetch", { id, offset, length: Math.min(FETCH_CHUNK, size - offset) })
          .catch((err) => { throw new ObjectLostError(`ObjectRef(${id}) could not be fetched from node ${nodeId}: ${err.message}`, { cause: err }); });
        buf.set(chunk, offset);
      }
    };
    await Promise.all(Array.from({ length: FETCH_WINDOW }, worker));
    return buf;
  }

  /**
   * The values of `refs`, taken in order as a loop of awaits would (the first error in order is
   * thrown), but with one promise for the whole get: values of refs this process owns arrive by
   * callback as their results do, and inline ones (most) are decoded at once. On a sync round trip
   * each promise between a result and the caller was a few microseconds with the caches cold.
   * The timeout covers the whole get: waiting for objects and fetching them from other nodes.
   * With `one`, it resolves to the single ref's value rather than a list.
   */
  get(refs: ObjectRef[], timeoutSec?: number, one?: false): Promise<unknown[]>;
  get(refs: [ObjectRef], timeoutSec: number | undefined, one: true): Promise<unknown>;
  get(refs: ObjectRef[], timeoutSec?: number, one = false): Promise<unknown> {
    this.ensureOpen();
    const n = refs.length;
    const out: unknown[] = new Array(n);
    const where: (StoredObject | undefined)[] = new Array(n);
    let next = 0;
    let fetching = false;
    let waiting = false;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    return new Promise<unknown>((resolve, reject) => {
      const end = (err?: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (waiting) this.blockHooks?.unblock();
        if (err === undefined) resolve(one ? out[0] : out);
        else reject(err);
      };
      const advance = () => {
        while (!done && !fetching && next < n) {
          const w = where[next];
          if (!w) return;
          const i = next;
          if ("inline" in w) {
            try {
              out[i] = decode(w.inline);
            } catch (err) {
              return end(err);
            }
            next++;
            continue;
          }
          fetching = true;
          this.materialize(w, refs[i].hex()).catch((err) => this.remake(refs[i], err)).then((v) => {
            out[i] = v;
            next++;
            fetching = false;
            advance();
          }, end);
          return;
        }
        if (next === n) end();
      };
      for (let i = 0; i < n; i++) {
        const now = this.locate(refs[i], (w) => {
          where[i] = w;
          advance();
        });
        if (now) where[i] = now;
        else waiting = true;
      }
      if (waiting) this.blockHooks?.block();
      advance();
      if (!done && timeoutSec !== undefined) {
        timer = setTimeout(() => end(new GetTimeoutError(
          `get timed out after ${timeoutSec}s: ${n - next} of ${n} object(s) not ready or not yet fetched (first: ${refs[next]})`,
        )), timeoutSec * 1000);
      }
    });
  }

  /**
   * Lineage reconstruction: an object this process owns was lost with the node that held it, and
   * the task that made it is known; publish that task again (within its maxRetries) and read the
   * new copy. Anything else rethrows the loss.
   */
  private async remake(ref: ObjectRef, lost: unknown): Promise<unknown> {
    const l = this.lineage.get(ref.taskId);
    if (!(lost instanceof ObjectLostError) || !l || this.tasks.has(ref.taskId)) throw lost;
    const { attempt, maxRetries } = l.sent;
    if (!mayRetry(attempt, maxRetries)) throw lost;
    this.lineage.delete(ref.taskId);
    const sent: Sent = { ...l.sent, attempt: attempt + 1 };
    for (const id of l.returns) this.owned.reset(id);
    this.tasks.set(ref.taskId, { state: nextTaskState(INITIAL_TASK_STATE, "ARGS_READY"), returns: l.returns, name: l.name, info: { ...l.info, end_time_ms: null }, sent });
    this.send(ref.taskId, sent);
    return this.materialize(await this.located(ref), ref.hex());
  }

  /**
   * Waits until `numReturns` of `refs` are ready or `timeoutSec` passes. Subscriptions are taken
   * back when it returns, so calling it in a loop (Ray's wait-for-each pattern) costs no more each time.
   */
  async wait(refs: ObjectRef[], numReturns: number, timeoutSec?: number): Promise<[ObjectRef[], ObjectRef[]]> {
    this.ensureOpen();
    const ready = new Set<number>();
    const takeBack: Array<() => void> = [];
    let timer: NodeJS.Timeout | undefined;
    let active = true;
    await new Promise<void>((resolve) => {
      const arrived = (i: number) => {
        if (!active) return;
        ready.add(i);
        if (ready.size >= numReturns) resolve();
      };
      for (let i = 0; i < refs.length && ready.size < numReturns; i++) {
        const id = refs[i].hex();
        if (this.owned.peek(id)) arrived(i);
        else if (this.owned.has(id)) {
          const off = this.owned.onReady(id, () => arrived(i));
          if (off) takeBack.push(off);
        } else {
          if (this.locate(refs[i], () => arrived(i))) arrived(i);
        }
      }
      if (ready.size >= numReturns) resolve();
      else if (timeoutSec !== undefined) timer = setTimeout(resolve, timeoutSec * 1000);
    });
    active = false;
    clearTimeout(timer);
    for (const off of takeBack) off();
    const yes: ObjectRef[] = [];
    const no: ObjectRef[] = [];
    refs.forEach((r, i) => (ready.has(i) && yes.length < numReturns ? yes : no).push(r));
    return [yes, no];
  }

  cancel(taskId: string, force: boolean, recursive: boolean): void {
    this.ensureOpen();
    const rec = this.tasks.get(taskId);
    if (!rec) return;
    this.failTask(taskId, encodeError(new TaskCancelledError(`task ${rec.name} (${taskId}) was cancelled`)));
    this.ch.publish(this.topo.control, "all.cancel", v8.serialize({ task: taskId, force, recursive }), { type: Kind.cancel });
  }

  /** Cancels every unfinished task this process submitted (a cancelled parent's children). */
  cancelAll(force: boolean): void {
    for (const taskId of [...this.tasks.keys()]) this.cancel(taskId, force, true);
  }

  publishLog(job: string, entry: LogEntry): void {
    this.ch.publish(this.topo.logs, job, v8.serialize(entry), { type: Kind.log });
  }

  private ensureOpen(): void {
    if (this.closed) throw new WarrenError("warren has been shut down: call `await warren.init()` again");
    if (this.lost) throw this.lost;
  }

  /**
   * One of this process's broker channels closed under it. A worker exits (its node retries what
   * it ran, as for any worker that died); a driver fails what waits instead of waiting forever.
   */
  channelLost(reason: Error): void {
    if (this.closed) return;
    if (this.config.role === "worker") {
      console.error(`warren worker ${process.pid}: a broker channel closed (${reason.message}); exiting`);
      process.exit(1);
    }
    this.clusterLost(new WarrenError(`warren lost its broker channel (${reason.message}); call \`await warren.shutdown()\` and init() again`, { cause: reason }));
  }

  /** The node running this driver's tasks is gone for good: fail everything waiting on it, now and later. */
  clusterLost(error: Error): void {
    this.lost = error;
    const encoded = encodeError(error);
    for (const taskId of [...this.tasks.keys()]) this.failTask(taskId, encoded);
    this.rpc.failAll(error);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (Runtime.active === this) Runtime.active = undefined;
    if (this.syncRpc) this.syncRpc(this.config.address, this.config.cluster, CLOSE_SYNC_RPC, null);
    if (this.store) {
      this.store.removePrefix(this.config.ownerId);
      await this.store.close();
    }
    // Closing the channel first waits for the broker to process what was sent on it (close-ok).
    await this.ch.close().catch(() => undefined);
    await this.conn.close().catch(() => undefined);
  }
}

export const DECLARED = Promise.resolve();

/** Where a routed message goes: an actor's mailbox, after `after` (its declaration) if set. */
export interface Route {
  exchange: string;
  key: string;
  after?: Promise<void>;
  headers?: Record<string, unknown>;
}
const ENDED_KEPT = 10_000;
const FETCH_CHUNK = 8 * 1024 * 1024;
const FETCH_WINDOW = 4;
const DEAD_ACTORS_KEPT = 10_000;
const LINEAGE_KEPT = 10_000;
/** At most this many rows per process in a state answer (Ray's state API also caps). */
const STATE_ROWS = 10_000;

export interface LogEntry {
  name: string;
  pid: number;
  stream: "stdout" | "stderr";
  text: string;
}

function printLog(e: LogEntry): void {
  const out = e.stream === "stderr" ? process.stderr : process.stdout;
  const lines = e.text.endsWith("\n") ? e.text.slice(0, -1).split("\n") : e.text.split("\n");
  out.write(lines.map((l) => `(${e.name} pid=${e.pid}) ${l}\n`).join(""));
}
