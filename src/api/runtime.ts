/**
 * api: what a user calls (init, remote, get, wait, put, cancel) and the per-process runtime
 * behind it (Ray's "core worker"): every driver and every worker has one. It owns the objects it
 * creates, submits tasks to the shape-keyed exchange, and answers borrowers through its inbox.
 */
import * as v8 from "node:v8";
import { AsyncLocalStorage } from "node:async_hooks";
import type * as amqp from "amqplib";
import { GetTimeoutError, ObjectLostError, TaskCancelledError, WarrenError } from "../errors";
import { connectBroker, Kind, Topology } from "../transport";
import { ObjectRef, TaskIds, objectId } from "../objects/ref";
import { ObjectStore } from "../objects/store";
import { OwnerTable, StoredObject } from "../objects/owner";
import { decode, decodeError, encode, encodeArgs, encodeError, findInstances, hasMarkers } from "../serialization";
import { startTask, TaskActor } from "../lifecycle/task";
import type { Descriptor } from "./registry";

/** Values up to this size travel inline in messages; larger ones go to the node's LMDB store. */
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

/** What a task message carries (v8-serialized). */
export interface TaskSpec {
  id: string;
  job: string;
  namespace: string;
  fn: Descriptor;
  name: string;
  args: Buffer;
  /** Indexes of top-level ObjectRef arguments, resolved to values before the call. */
  refArgs: number[];
  /** Values of top-level refs the submitter already had (saves the worker a round trip). */
  resolved: Record<number, StoredObject>;
  numReturns: number;
  retryExceptions: boolean;
  /** Set for actor creation and actor calls. */
  actor?: { id: string; method?: string; create?: unknown };
}

/** Everything `.remote()` needs that does not change per call, computed once by `.options()`. */
export interface TaskTemplate {
  fn: Descriptor;
  name: string;
  shape: string;
  numReturns: number;
  maxRetries: number;
  retryExceptions: boolean;
}

export interface ResultMessage {
  task: string;
  returns?: StoredObject[];
  error?: ReturnType<typeof encodeError>;
}

interface TaskRecord {
  machine: TaskActor;
  returns: string[];
  name: string;
}

/** Per-call context inside a worker (tasks of one async actor run concurrently). */
export interface TaskContext {
  taskId: string;
  taskName: string;
  jobId: string;
  namespace: string;
  actorId?: string;
  canceled: boolean;
}

export const taskContext = new AsyncLocalStorage<TaskContext>();

export class Runtime {
  private static active?: Runtime;
  readonly topo: Topology;
  readonly owned = new OwnerTable();
  private readonly ids: TaskIds;
  private readonly tasks = new Map<string, TaskRecord>();
  /** Final states of recently ended tasks, oldest first, for state queries. */
  private readonly ended = new Map<string, string>();
  private readonly requests = new Map<string, Promise<StoredObject>>();
  private readonly replyWaiters = new Map<string, (value: StoredObject) => void>();
  private readonly shapes = new Map<string, Promise<void>>();
  private store?: ObjectStore;
  private closed = false;
  /** Set by a worker: told when a `get` blocks and unblocks, so the node can lend the CPU. */
  blockHooks?: { block(): void; unblock(): void };
  /** Set by a worker: handles messages its inbox gets besides the owner protocol. */
  extraHandler?: (msg: amqp.ConsumeMessage) => void;
  private readonly freer = new FinalizationRegistry<string>((id) => this.freePrivate(id));

  private constructor(
    readonly config: RuntimeConfig,
    readonly conn: amqp.ChannelModel,
    readonly ch: amqp.Channel,
  ) {
    this.topo = new Topology(config.cluster);
    this.ids = new TaskIds(config.ownerId);
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
    ch.on("error", () => undefined);
    ch.on("return", (msg: amqp.Message) => rt.onReturned(msg));
    await rt.topo.declare(ch);
    const inbox = rt.topo.inbox(config.ownerId);
    await ch.assertQueue(inbox, { exclusive: true, autoDelete: true });
    if (config.role === "driver" && config.logToDriver) await ch.bindQueue(inbox, rt.topo.logs, config.jobId);
    await ch.consume(inbox, (msg) => msg && rt.onInbox(msg), { noAck: true });
    Runtime.active = rt;
    return rt;
  }

  get inbox(): string {
    return this.topo.inbox(this.config.ownerId);
  }

  /** The job and namespace a new task belongs to: the caller's task's, else this driver's. */
  private origin(): { job: string; namespace: string } {
    const ctx = taskContext.getStore();
    return ctx ? { job: ctx.jobId, namespace: ctx.namespace } : { job: this.config.jobId, namespace: this.config.namespace };
  }

  // ---- submission ------------------------------------------------------------------------

  submit(t: TaskTemplate, args: unknown[], actor?: TaskSpec["actor"], route?: { exchange: string; key: string }): ObjectRef[] {
    this.ensureOpen();
    const taskId = this.ids.next();
    const argBytes = encodeArgs(args, t.name);
    const refArgs: number[] = [];
    const deps: ObjectRef[] = [];
    args.forEach((a, i) => {
      if (a instanceof ObjectRef) {
        refArgs.push(i);
        deps.push(a);
      }
    });
    if (hasMarkers(argBytes)) for (const r of findInstances(args, ObjectRef)) this.owned.markEscaped(r.hex());
    const returns: string[] = [];
    for (let i = 1; i <= t.numReturns; i++) {
      const id = objectId(taskId, i);
      returns.push(id);
      this.owned.pending(id);
    }
    const machine = startTask();
    this.tasks.set(taskId, { machine, returns, name: t.name });
    const { job, namespace } = this.origin();
    const spec: TaskSpec = { id: taskId, job, namespace, fn: t.fn, name: t.name, args: argBytes, refArgs, resolved: {}, numReturns: t.numReturns, retryExceptions: t.retryExceptions, actor };
    const dest = route ?? { exchange: this.topo.tasks, key: t.shape };
    const publish = () => {
      if (machine.getSnapshot().status !== "active") return; // cancelled while waiting
      machine.send({ type: "ARGS_READY" });
      this.ch.publish(dest.exchange, dest.key, v8.serialize(spec), {
        messageId: taskId,
        type: t.name,
        headers: { attempt: 0, maxRetries: t.maxRetries },
      });
    };
    // PENDING_ARGS_AVAIL: refs this process owns are waited for here and sent by value, so a
    // worker is never held by a task whose arguments do not exist yet.
    const waits: Promise<void>[] = [];
    deps.forEach((d, k) => {
      const idx = refArgs[k];
      const now = this.owned.peek(d.hex());
      if (now) spec.resolved[idx] = now;
      else if (this.owned.has(d.hex())) {
        waits.push(new Promise<void>((res) => this.owned.onReady(d.hex(), (v) => { spec.resolved[idx] = v; res(); })));
      }
    });
    if (!route && this.shapes.get(t.shape) !== DECLARED) waits.push(this.ensureShape(t.shape));
    if (waits.length === 0) publish();
    else Promise.all(waits).then(publish, (err) => this.failTask(taskId, encodeError(err)));
    return returns.map((id) => this.track(new ObjectRef(id)));
  }

  /** Declares a shape's queue once per process and tells the nodes it exists. */
  private ensureShape(shape: string): Promise<void> {
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
    if (value && "node" in value && value.node === this.config.nodeId && !this.closed) this.localStore().remove(id);
  }

  put(value: unknown): ObjectRef {
    this.ensureOpen();
    const id = objectId(this.ids.next(), 0);
    const bytes = encode(value, "the value passed to put()");
    if (hasMarkers(bytes)) for (const r of findInstances(value, ObjectRef)) this.owned.markEscaped(r.hex());
    this.owned.ready(id, this.storeValue(id, bytes));
    return this.track(new ObjectRef(id));
  }

  /** Inline if small, else into this node's LMDB (committed before anyone hears of it). */
  storeValue(id: string, bytes: Buffer): StoredObject {
    if (bytes.length <= INLINE_MAX) return { inline: bytes };
    this.localStore().putSync(id, bytes);
    return { node: this.config.nodeId, size: bytes.length };
  }

  localStore(): ObjectStore {
    return (this.store ??= ObjectStore.open(this.config.storePath));
  }

  // ---- results ---------------------------------------------------------------------------

  private onInbox(msg: amqp.ConsumeMessage): void {
    switch (msg.properties.type) {
      case Kind.result: return this.onResult(v8.deserialize(msg.content));
      case Kind.log: return printLog(v8.deserialize(msg.content));
      case Kind.objectRequest: return this.onObjectRequest(v8.deserialize(msg.content));
      case Kind.objectReply: {
        const { id, value } = v8.deserialize(msg.content);
        this.replyWaiters.get(id)?.(value);
        this.replyWaiters.delete(id);
        return;
      }
      default: this.extraHandler?.(msg);
    }
  }

  onResult(r: ResultMessage): void {
    const rec = this.tasks.get(r.task);
    if (!rec) return; // cancelled, or a late duplicate after a retry
    this.tasks.delete(r.task);
    if (r.error) {
      rec.machine.send({ type: "FAIL", error: r.error.name });
      for (const id of rec.returns) this.settle(id, { error: r.error });
    } else {
      rec.machine.send({ type: "FINISH" });
      rec.returns.forEach((id, i) => this.settle(id, r.returns![i]));
    }
    this.ended.set(r.task, rec.machine.getSnapshot().value as string);
    if (this.ended.size > ENDED_KEPT) this.ended.delete(this.ended.keys().next().value!);
  }

  private settle(id: string, value: StoredObject): void {
    // The caller dropped the ref before the result came: free a stored copy nobody will read.
    if (!this.owned.resolve(id, value) && "node" in value && value.node === this.config.nodeId) this.localStore().remove(id);
  }

  failTask(taskId: string, error: ReturnType<typeof encodeError>): void {
    this.onResult({ task: taskId, error });
  }

  /** The state of a task this process submitted, from its lifecycle machine. */
  taskState(taskId: string): string | undefined {
    return (this.tasks.get(taskId)?.machine.getSnapshot().value as string | undefined) ?? this.ended.get(taskId);
  }

  // ---- borrowing -------------------------------------------------------------------------

  private onObjectRequest(req: { id: string; replyTo: string }): void {
    const reply = (value: StoredObject) =>
      this.ch.publish("", req.replyTo, v8.serialize({ id: req.id, value }), { type: Kind.objectReply });
    if (!this.owned.onReady(req.id, reply)) {
      reply({ error: encodeError(new ObjectLostError(`object ${req.id} is unknown to its owner (freed, or the owner restarted)`)) });
    }
  }

  /** A request the broker could not route: the owner's inbox is gone, so the owner died. */
  private onReturned(msg: amqp.Message): void {
    if (msg.properties.type !== Kind.objectRequest) return;
    const { id } = v8.deserialize(msg.content);
    const err = new ObjectLostError(`the owner of ObjectRef(${id}) has exited, so the object is lost`);
    this.replyWaiters.get(id)?.({ error: encodeError(err) });
    this.replyWaiters.delete(id);
  }

  /** Where an object's value is, from our table or by asking its owner. */
  locate(ref: ObjectRef): StoredObject | Promise<StoredObject> {
    const id = ref.hex();
    const local = this.owned.peek(id);
    if (local) return local;
    if (this.owned.has(id)) return new Promise((res) => this.owned.onReady(id, res));
    let p = this.requests.get(id);
    if (!p) {
      p = new Promise<StoredObject>((res) => this.replyWaiters.set(id, res)).finally(() => this.requests.delete(id));
      this.requests.set(id, p);
      this.ch.publish("", this.topo.inbox(ref.ownerId), v8.serialize({ id, replyTo: this.inbox }), {
        type: Kind.objectRequest,
        mandatory: true,
      });
    }
    return p;
  }

  /** The value of a stored object. */
  materialize(value: StoredObject, id: string): unknown {
    if ("inline" in value) return decode(value.inline);
    if ("error" in value) throw decodeError(value.error);
    if (value.node !== this.config.nodeId) {
      throw new ObjectLostError(`ObjectRef(${id}) is stored on node ${value.node}, which this process cannot reach`);
    }
    const bytes = this.localStore().view(id);
    if (!bytes) throw new ObjectLostError(`ObjectRef(${id}) is no longer in the object store of node ${value.node}`);
    return decode(bytes);
  }

  async get(refs: ObjectRef[], timeoutSec?: number): Promise<unknown[]> {
    this.ensureOpen();
    const located = refs.map((r) => this.locate(r));
    const waiting = located.filter((l) => l instanceof Promise);
    if (waiting.length > 0) {
      this.blockHooks?.block();
      try {
        await withTimeout(Promise.all(waiting), timeoutSec, () => new GetTimeoutError(
          `get timed out after ${timeoutSec}s: ${waiting.length} of ${refs.length} object(s) not ready ` +
            `(first: ${refs[located.indexOf(waiting[0])]})`,
        ));
      } finally {
        this.blockHooks?.unblock();
      }
    }
    const values: unknown[] = [];
    for (let i = 0; i < refs.length; i++) values.push(this.materialize(await located[i], refs[i].hex()));
    return values;
  }

  async wait(refs: ObjectRef[], numReturns: number, timeoutSec?: number): Promise<[ObjectRef[], ObjectRef[]]> {
    this.ensureOpen();
    const ready = new Set<number>();
    await new Promise<void>((resolve) => {
      const done = () => ready.size >= numReturns && resolve();
      refs.forEach((r, i) => {
        const l = this.locate(r);
        if (l instanceof Promise) l.then(() => { ready.add(i); done(); });
        else ready.add(i);
      });
      done();
      if (timeoutSec !== undefined) setTimeout(resolve, timeoutSec * 1000).unref();
    });
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
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (Runtime.active === this) Runtime.active = undefined;
    if (this.store) {
      this.store.removePrefix(this.config.ownerId);
      await this.store.close();
    }
    await this.conn.close().catch(() => undefined);
  }
}

const DECLARED = Promise.resolve();
const ENDED_KEPT = 10_000;

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

function withTimeout<T>(p: Promise<T>, timeoutSec: number | undefined, error: () => Error): Promise<T> {
  if (timeoutSec === undefined) return p;
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(error()), timeoutSec * 1000); }),
  ]).finally(() => clearTimeout(timer));
}
