/**
 * node: the daemon of one machine (Ray's raylet). It holds the node's resources and LMDB store,
 * consumes the shape queues it can ever satisfy, admits a delivery when its demand fits what is
 * free now, and runs it on a pooled worker process. A delivery stays unacked until its task is
 * done, so if this node dies the broker hands the task to another; if a worker dies, the node
 * retries the task (maxRetries) or answers the owner with WorkerCrashedError.
 *
 * An actor's creation is such a task; its worker then hosts the actor. When that worker dies the
 * node restarts the actor (maxRestarts) by publishing its creation again, or declares it dead and
 * answers every call left in its mailbox with ActorDiedError. The head node also runs the
 * cluster's head (head/server.ts).
 */
import { BoundedSet } from "../bounded";
import * as fs from "node:fs";
import * as path from "node:path";
import * as v8 from "node:v8";
import { ChildProcess, fork } from "node:child_process";
import type * as amqp from "amqplib";
import * as os from "node:os";
import { ActorDiedError, WarrenError } from "../errors";
import { Topology, connectBroker, watchChannel } from "../transport";
import { Kind, RpcReply } from "../wire/kinds";
import { ownerOf } from "../wire/ids";
import { drainQueue } from "../transport/queues";
import { ObjectStore } from "../objects/store";
import { decodeError, encodeError } from "../serialization";
import { Demand, Ledger, Resources, compileDemand, fits, parseShape } from "../scheduling/shape";
import { ChannelOps, ShapeConsumer } from "./consumer";
import { GpuPool, gpuIds } from "./gpus";
import { RecentDeaths, giveBack, mayRetry, nextAttempt, onRedelivery, publishAgain, workerCrashed } from "../scheduling/retry";
import { MetricsServer, serveMetrics } from "./metrics";
import { HeadServer } from "../head/server";
import { RpcClient } from "../transport/rpc";
import type { ActorCreationMessage, NodeInfo, Peer } from "../wire/head";
import { nodeIp } from "./resources";
import type { ActorEvent } from "../lifecycle/actor";
import { LONG_TASK_MS, type NodeToWorker, type WorkerConfig, type WorkerToNode } from "../wire/ipc";
import { ResultMessage, encodeResults, readHead } from "../wire/messages";

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
}

/** How often a node reports to the head (head/server.ts says how long a silence may last). */
const HEARTBEAT_MS = 500;
/** How long a new actor waits for the head to record it ALIVE before it serves calls anyway. */
const HEAD_WAIT_MS = 5000;
/** A delivery this node cannot start is given back after this long if a peer could start it. */
const SPILL_MS = 20;

interface Delivery {
  msg: amqp.ConsumeMessage;
  demand: Resources;
  units: Demand;
  shape: string;
  received: number;
}

interface Running extends Delivery {
  gpuIds: number[];
  cancelled: boolean;
  started: number;
  /** Acked before it finished; the head knows it runs here (see ackEarly). */
  acked: boolean;
}

interface HostedActor {
  id: string;
  /** The creation delivery, published again to restart the actor. */
  creation: amqp.ConsumeMessage;
  held: Resources;
  heldUnits: Demand;
  gpuIds: number[];
  alive: boolean;
  /** Why it must not restart, once that is decided (killed, exited, constructor threw). */
  final?: Error;
}

interface Worker {
  proc: ChildProcess;
  ready: boolean;
  /** The lowest number no other live worker of this node has: its lease's place in line (LEASE_PRIORITY). */
  rank: number;
  /** A task this node handed it (over IPC). */
  task?: Running;
  actor?: HostedActor;
  /**
   * The slot it leases (worker/lease.ts): these resources and GPUs stay taken while it runs the
   * shape's tasks straight from the broker. `lent`: its running task waits in get() and lent its CPU.
   */
  lease?: { queue: string; units: Demand; demand: Resources; gpuIds: number[]; lent: boolean };
  /** A leased task running long, acked by the worker once the head knew (see heartbeat). */
  longTask?: string;
}

const WORKER_MAIN = path.join(__dirname, "..", "worker", "main.js");
/**
 * Worker leases (worker/lease.ts): a worker holds a slot and takes its shape's tasks from the
 * broker itself, about 3x the pipelined task throughput of handing every task node -> worker
 * over IPC. WARREN_LEASES=0 turns them off (every task then goes through the node).
 */
const LEASES = process.env.WARREN_LEASES !== "0";
/**
 * The consumer priority of a lease held by the worker of rank 0; each next rank one less. The
 * node's own consumers have none (0), so the broker gives a task to the first lease in line with
 * room, and to the node only when all are full (worker/lease.ts).
 */
const LEASE_PRIORITY = 1000;

export class NodeDaemon {
  readonly topo: Topology;
  readonly storePath: string;
  private readonly free: Ledger;
  private readonly gpus: GpuPool;
  private readonly pending: Delivery[] = [];
  private readonly workers = new Set<Worker>();
  /** Leased workers that died lately, by queue (scheduling/retry.ts). */
  private readonly deaths = new RecentDeaths();
  private readonly idle: Worker[] = [];
  private starting = 0;
  /** Every shape announced in the cluster, with its consumer if this node can ever run it. */
  private readonly shapes = new Map<string, ShapeConsumer | undefined>();
  private ops!: ChannelOps;
  /** Other alive nodes and what they had free at the last heartbeat. */
  private peers: Peer[] = [];
  private balanceTimer?: NodeJS.Timeout;
  private metrics?: MetricsServer;
  private readonly cancelled = new BoundedSet<string>(100_000);
  /** Actors killed with noRestart before this node placed them. */
  private readonly killed = new Set<string>();
  /** The cluster's head, when this node is the head node. */
  private head?: HeadServer;
  private conn!: amqp.ChannelModel;
  private ch!: amqp.Channel;
  private taskCh!: amqp.Channel;
  private store!: ObjectStore;
  private stopping?: Promise<void>;
  private readonly timers: NodeJS.Timeout[] = [];
  private rpc!: RpcClient;

  constructor(readonly config: NodeConfig, private readonly onStopped: () => void = () => undefined) {
    this.topo = new Topology(config.cluster);
    this.free = new Ledger(config.resources);
    this.gpus = new GpuPool(gpuIds(Math.floor(config.resources.GPU ?? 0)));
    this.storePath = path.join(config.sessionDir, "objects.lmdb");
  }

  async start(): Promise<void> {
    fs.mkdirSync(path.join(this.config.sessionDir, "logs"), { recursive: true });
    this.store = ObjectStore.open(this.storePath);
    this.conn = await connectBroker(this.config.address, `warren node ${this.config.nodeId}`);
    this.conn.on("close", () => void this.stop());
    this.ch = await this.conn.createChannel();
    this.taskCh = await this.conn.createChannel();
    // A node without its channels can neither take nor ack tasks: it exits, and the broker and
    // the head recover its work as for any node that died.
    for (const c of [this.ch, this.taskCh]) {
      watchChannel(c, (reason) => {
        if (this.stopping) return;
        console.error(`warren node ${this.config.nodeId}: a broker channel closed (${reason.message}); exiting`);
        process.exit(1);
      });
    }
    this.ops = new ChannelOps(this.taskCh);
    await this.topo.declare(this.ch);
    if (this.config.isHead) {
      this.head = new HeadServer({ conn: this.conn, ch: this.ch, topo: this.topo, nodeId: this.config.nodeId, actorDead: (id, err) => this.actorDead(id, err) });
      await this.head.start();
    }
    const q = this.topo.nodeQueue(this.config.nodeId);
    this.rpc = new RpcClient(this.ch, this.topo, q);
    await this.ch.assertQueue(q, { exclusive: true, autoDelete: true });
    await this.ch.bindQueue(q, this.topo.control, `node.${this.config.nodeId}`);
    await this.ch.bindQueue(q, this.topo.control, "all.*");
    await this.ch.consume(q, (m) => m && this.onControl(m), { noAck: true });
    this.metrics = await serveMetrics({
      nodeId: this.config.nodeId,
      resources: () => ({ total: this.config.resources, available: this.free.toResources() }),
      workers: () => this.workers.size,
      tasksRunning: () => [...this.workers].filter((w) => w.task || w.lease).length,
    });
    const { shapes } = await this.rpc.head("node.register", this.info());
    for (const shape of shapes) await this.consumeShape(shape);
    this.timers.push(setInterval(() => void this.heartbeat(), HEARTBEAT_MS));
    // Ray prestarts a worker per CPU so the first tasks do not wait for a process to boot.
    for (let i = 0; i < Math.floor(this.config.resources.CPU ?? 0); i++) this.spawn();
  }

  info(): NodeInfo {
    return {
      nodeId: this.config.nodeId,
      isHead: this.config.isHead,
      ip: nodeIp(),
      hostname: os.hostname(),
      storePath: this.storePath,
      metricsPort: this.metrics?.port ?? 0,
      resources: this.config.resources,
    };
  }

  /**
   * Reports to the head: what is free, and which tasks run here with their delivery already acked
   * (so the head can tell their owners if this node dies). Long tasks are acked here, after the
   * head has heard of them, so a broker's consumer_timeout never applies to them.
   */
  private async heartbeat(): Promise<void> {
    const now = Date.now();
    const long = this.runningTasks().filter((t) => !t.acked && now - t.started > LONG_TASK_MS);
    const reply = this.rpc.head("node.heartbeat", {
      nodeId: this.config.nodeId,
      available: this.free.toResources(),
      acked: [
        ...[...this.runningTasks().filter((t) => t.acked), ...long].map((t) => t.msg.properties.messageId as string),
        ...[...this.workers].flatMap((w) => (w.longTask ? [w.longTask] : [])),
      ],
    });
    for (const t of long) this.ack(t);
    this.peers = (await reply.catch(() => ({ peers: [] }))).peers;
  }

  private runningTasks(): Running[] {
    return [...this.workers].flatMap((w) => (w.task ? [w.task] : []));
  }

  /** A task that blocks (or runs long) is acked once the head has been told it runs here. */
  private ackEarly(t: Running): void {
    if (t.acked) return;
    this.rpc.notify("node.running", { nodeId: this.config.nodeId, task: t.msg.properties.messageId });
    this.ack(t); // after the notice on the same channel order: the head hears first
  }

  private ack(t: Running): void {
    if (t.acked) return;
    t.acked = true;
    this.taskCh.ack(t.msg);
  }

  private onControl(msg: amqp.ConsumeMessage): void {
    switch (msg.properties.type) {
      case Kind.reply: return this.rpc.settle(msg);
      case Kind.shape: {
        const shape = msg.content.toString();
        this.head?.shapeAnnounced(shape);
        return void this.consumeShape(shape);
      }
      case Kind.cancel: return this.onCancel(v8.deserialize(msg.content));
      case Kind.killActor: return this.onKillActor(v8.deserialize(msg.content));
      case Kind.fetchObject: return this.serveObject(msg);
      case Kind.freeObject: return this.store.remove(v8.deserialize(msg.content).id);
      case Kind.stop: return void this.stop();
    }
  }

  /** A chunk of a stored object, for a process on another node (serialize copies it out of the map). */
  private serveObject(msg: amqp.ConsumeMessage): void {
    const { id, offset, length } = v8.deserialize(msg.content);
    const chunk = this.store.chunk(id, offset, length);
    const reply: RpcReply = chunk
      ? { ok: true, value: { chunk } }
      : { ok: false, error: encodeError(new WarrenError(`object ${id} is not in the store of node ${this.config.nodeId}`)) };
    this.ch.publish("", msg.properties.replyTo, v8.serialize(reply), { type: Kind.reply, correlationId: msg.properties.correlationId });
  }

  /** Starts consuming a shape's queue if this node could ever run it. */
  private async consumeShape(shape: string): Promise<void> {
    if (this.shapes.has(shape)) return;
    const demand = parseShape(shape);
    if (!fits(demand, this.config.resources)) return void this.shapes.set(shape, undefined);
    // Enough in flight to keep every slot busy with one waiting behind it, and no more, so the
    // rest of a burst stays in the queue for other nodes.
    const units = compileDemand(demand);
    const consumer = new ShapeConsumer(this.ops, this.topo.shapeQueue(shape), units, (m) => {
      if (m.fields.redelivered) return this.onRedelivered(m);
      this.pending.push({ msg: m, demand, units, shape, received: Date.now() });
      this.schedule();
    });
    this.shapes.set(shape, consumer);
    await consumer.consume(LEASES ? Math.max(1, this.free.count(units, 256)) : this.prefetch(units));
  }

  /**
   * Without leases, the node takes every task of a shape itself: enough in flight (they stay
   * unacked while they run) to keep each slot busy with one waiting behind it.
   */
  private prefetch(units: Demand): number {
    return Math.min(256, 2 * new Ledger(this.config.resources).count(units, 128) + 2);
  }

  /** Admits pending deliveries in arrival order, as far as resources and idle workers allow. */
  private schedule(): void {
    // What deliveries still waiting for a worker would take: a worker is started for each of those
    // (counting those already starting), not for every delivery that fits what is free.
    let wouldTake: Ledger | undefined;
    let waitingForWorker = 0;
    for (let i = 0; i < this.pending.length; ) {
      const d = this.pending[i];
      const h = d.msg.properties.headers ?? {};
      if (this.cancelled.has(d.msg.properties.messageId) || (h.actor && this.killed.has(h.actor))) {
        this.pending.splice(i, 1);
        this.taskCh.ack(d.msg);
        if (h.actor) void this.actorDead(h.actor, new ActorDiedError(`the actor ${h.actor} was killed before it started`));
        continue;
      }
      if (!this.free.fits(d.units)) { i++; continue; }
      if (this.idle.length === 0) {
        wouldTake ??= this.free.clone();
        if (wouldTake.fits(d.units)) {
          wouldTake.take(d.units);
          waitingForWorker++;
        }
        i++;
        continue;
      }
      const gpuIds = this.gpus.allocate(d.demand.GPU ?? 0);
      if (!gpuIds) { i++; continue; }
      const w = this.idle.pop()!;
      this.pending.splice(i, 1);
      this.free.take(d.units);
      w.task = { ...d, gpuIds, cancelled: false, started: Date.now(), acked: false };
      const held = h.actor ? parseShape(h.held) : d.demand;
      if (h.actor) w.actor = { id: h.actor, creation: d.msg, held, heldUnits: compileDemand(held), gpuIds, alive: false };
      else w.lease = { queue: this.topo.shapeQueue(d.shape), units: d.units, demand: d.demand, gpuIds, lent: false };
      this.post(w, {
        t: "task", body: d.msg.content, tag: d.msg.fields.deliveryTag, attempt: h.attempt ?? 0, gpuIds, resources: held,
        lease: LEASES && w.lease ? { queue: w.lease.queue, priority: LEASE_PRIORITY - w.rank } : undefined,
      });
    }
    for (let n = waitingForWorker - this.starting; n > 0; n--) this.spawn();
    this.balance();
  }

  /**
   * Spillback: while this node holds deliveries of a shape it cannot start and a peer has room for
   * them, it stops consuming that shape and gives back what has waited SPILL_MS, so an idle node
   * takes it. It consumes again once nothing of that shape waits here.
   */
  private balance(): void {
    clearTimeout(this.balanceTimer);
    if (this.stopping) return;
    const now = Date.now();
    let recheck = false;
    for (const [shape, consumer] of this.shapes) {
      if (!consumer) continue;
      const waiting = this.pending.filter((d) => d.shape === shape);
      if (waiting.length === 0) {
        if (!LEASES) {
          if (!consumer.active) void consumer.consume(this.prefetch(consumer.units));
          continue;
        }
        // Take more of a shape only while a slot for it is free (leased workers pull the rest),
        // in a window renewed when tasks still running here hold it: else a free slot could sit
        // idle behind a long task, with the shape's queue full.
        const free = this.free.count(consumer.units, 256);
        if (free === 0) {
          if (consumer.active) void consumer.pause();
        } else if (consumer.room((tag) => this.unacked(tag)) < free) void consumer.consume(free);
        continue;
      }
      if (!this.peers.some((p) => fits(waiting[0].demand, p.available))) continue;
      if (consumer.active) void consumer.pause();
      for (const d of waiting) {
        if (now - d.received < SPILL_MS) { recheck = true; continue; }
        this.pending.splice(this.pending.indexOf(d), 1);
        giveBack(this.taskCh, d.msg);
      }
    }
    if (recheck || this.pending.length > 0) this.balanceTimer = setTimeout(() => this.balance(), SPILL_MS);
  }

  /** Deliveries of the consumer `tag` this node holds unacked: waiting, or running on a worker. */
  private unacked(tag: string): number {
    let n = 0;
    for (const d of this.pending) if (d.msg.fields.consumerTag === tag) n++;
    for (const w of this.workers) if (w.task && !w.task.acked && w.task.msg.fields.consumerTag === tag) n++;
    return n;
  }

  private spawn(): void {
    const workerConfig: WorkerConfig = {
      address: this.config.address,
      cluster: this.config.cluster,
      nodeId: this.config.nodeId,
      storePath: this.storePath,
    };
    const log = fs.openSync(this.workersLog, "a");
    const proc = fork(WORKER_MAIN, [], {
      env: { ...process.env, WARREN_WORKER: JSON.stringify(workerConfig) },
      serialization: "advanced",
      stdio: ["ignore", log, log, "ipc"],
    });
    fs.closeSync(log);
    let rank = 0;
    while ([...this.workers].some((o) => o.rank === rank)) rank++;
    const w: Worker = { proc, ready: false, rank: Math.min(rank, LEASE_PRIORITY - 1) };
    this.workers.add(w);
    this.starting++;
    proc.on("message", (m: WorkerToNode) => this.onWorker(w, m));
    proc.on("exit", (code, signal) => this.onWorkerExit(w, code, signal));
  }

  /**
   * A worker may have died a moment ago, its exit not yet handled (onWorkerExit deals with what it
   * held): a message to it is dropped, not raised as an error that would end this node.
   */
  private post(w: Worker, m: NodeToWorker): void {
    if (w.proc.connected) w.proc.send(m, () => undefined);
  }

  private onWorker(w: Worker, m: WorkerToNode): void {
    switch (m.t) {
      case "ready":
        w.ready = true;
        this.starting--;
        this.idle.push(w);
        return this.schedule();
      case "done": {
        const t = w.task!;
        w.task = undefined;
        if (m.retry) this.republish(t.msg);
        this.ack(t);
        if (LEASES) return; // the slot stays the worker's lease
        this.releaseWorker(w);
        this.idle.push(w);
        return this.schedule();
      }
      case "lease-returned":
        this.releaseWorker(w);
        this.idle.push(w);
        return this.schedule();
      case "long":
        w.longTask = m.task;
        this.rpc.notify("node.running", { nodeId: this.config.nodeId, task: m.task });
        this.post(w, { t: "ack-long", task: m.task });
        return;
      case "long-done":
        if (w.longTask === m.task) w.longTask = undefined;
        return;
      // A task blocked in get() lends its CPU back (Ray's rule: CPU only, not GPU or custom).
      case "blocked": {
        const l = w.lease;
        if (l && !l.lent && l.demand.CPU) {
          if (w.task) this.ackEarly(w.task); // a waiting task must not hold prefetch that its children need
          l.lent = true;
          this.free.give(compileDemand({ CPU: l.demand.CPU }));
          this.schedule();
        }
        return;
      }
      case "unblocked":
        if (w.lease?.lent) {
          w.lease.lent = false;
          this.free.take(compileDemand({ CPU: w.lease.demand.CPU }));
        }
        return;
      case "actor-alive": {
        // The actor now holds only `held` (an actor without numCpus needs a CPU to be placed, none to live).
        const t = w.task!;
        const a = w.actor!;
        w.task = undefined;
        a.alive = true;
        this.ack(t);
        this.free.give(t.units);
        this.free.take(a.heldUnits);
        const c = t.msg;
        // The actor serves calls once the head has it ALIVE, or after HEAD_WAIT_MS without an
        // answer (a head that is gone answers nothing, and its state API nobody).
        const timer = setTimeout(() => serve(), HEAD_WAIT_MS);
        const serve = () => {
          clearTimeout(timer);
          this.post(w, { t: "serve" });
        };
        this.rpc.head("actor.event", {
          id: a.id,
          event: { type: "ALIVE", nodeId: this.config.nodeId, pid: m.pid },
          creation: { body: c.content, routingKey: c.fields.routingKey, headers: c.properties.headers ?? {}, messageId: c.properties.messageId, type: c.properties.type },
        }).then(serve, serve);
        return this.schedule();
      }
      case "actor-failed":
        w.actor!.final = new ActorDiedError(`the actor ${w.actor!.id} died: its constructor threw`, { cause: decodeError(m.error) });
        w.proc.kill("SIGKILL");
        return;
      case "actor-exit":
        w.actor!.final = new ActorDiedError(`the actor ${w.actor!.id} exited: it called exitActor()`);
        return;
    }
  }

  /** Gives back what a worker held: its lease (less a CPU it lent), or the task it was handed. */
  private releaseWorker(w: Worker): void {
    const l = w.lease;
    if (l) {
      this.free.give(l.lent ? compileDemand({ ...l.demand, CPU: 0 }) : l.units);
      this.gpus.release(l.gpuIds, l.demand.GPU ?? 0);
      w.lease = undefined;
    } else if (w.task) {
      this.free.give(w.task.units);
      this.gpus.release(w.task.gpuIds, w.task.demand.GPU ?? 0);
    }
  }

  private onWorkerExit(w: Worker, code: number | null, signal: string | null): void {
    this.workers.delete(w);
    const i = this.idle.indexOf(w);
    if (i >= 0) this.idle.splice(i, 1);
    if (!w.ready) this.starting--;
    if (this.stopping) return;
    const how = signal ?? `exit code ${code}`;
    if (w.actor) this.onActorWorkerExit(w, w.actor, how);
    else {
      // A leased task it held goes back to the queue by itself (the broker requeues it): whoever
      // gets it on this node hears how the worker died, to say so if it must fail the task.
      if (w.lease) {
        const death = { pid: w.proc.pid!, how, log: this.workersLog };
        this.deaths.note(w.lease.queue, death);
        for (const o of this.workers) if (o.ready && !o.actor) this.post(o, { t: "worker-died", queue: w.lease.queue, death });
      }
      if (w.task) this.onTaskWorkerExit(w, w.task, how);
      this.releaseWorker(w);
    }
    this.schedule();
  }

  private onTaskWorkerExit(w: Worker, t: Running, how: string): void {
    const attempt: number = t.msg.properties.headers?.attempt ?? 0;
    const { maxRetries } = readHead(t.msg.content);
    if (t.cancelled) {
      // The owner already answered itself with TaskCancelledError.
    } else if (mayRetry(attempt, maxRetries)) {
      this.republish(t.msg);
    } else {
      const err = workerCrashed(t.msg.properties.type, attempt, maxRetries, { pid: w.proc.pid!, how, log: this.workersLog });
      this.replyToOwner(t.msg.properties.messageId, { task: t.msg.properties.messageId, error: encodeError(err) });
    }
    this.ack(t);
  }

  /** An actor's worker is gone: restart the actor if it may, else it is dead for good. */
  private onActorWorkerExit(w: Worker, a: HostedActor, how: string): void {
    if (a.alive) {
      this.free.give(a.heldUnits);
      this.gpus.release(a.gpuIds, a.held.GPU ?? 0);
    } else this.releaseWorker(w);
    const h = a.creation.properties.headers ?? {};
    const restarts: number = h.restarts ?? 0;
    const maxRestarts: number = h.maxRestarts ?? 0;
    const final = a.final ?? (!mayRetry(restarts, maxRestarts)
      ? new ActorDiedError(`the actor ${a.id} died: its worker (pid=${w.proc.pid}) exited (${how}) and it has used its ${maxRestarts} restart(s) (maxRestarts)`)
      : undefined);
    if (!a.alive && w.task) this.ack(w.task);
    if (final) {
      void this.actorDead(a.id, final);
    } else {
      this.actorEvent(a.id, { type: "RESTARTING" });
      this.republish(a.creation, { ...h, restarts: restarts + 1 });
    }
  }

  /**
   * Records an actor's death, answers every call left in its mailbox and removes it, then tells
   * every process: a call the broker routed to the mailbox just as it was deleted is dropped
   * without a trace, so its caller learns of the death from this broadcast instead.
   */
  private async actorDead(actorId: string, error: Error): Promise<void> {
    const encoded = encodeError(error);
    this.actorEvent(actorId, { type: "DEAD", cause: encoded });
    await drainQueue(this.conn, this.topo.mailbox(actorId), (m) =>
      this.replyToOwner(m.properties.messageId, { task: m.properties.messageId, error: encoded }),
    ).catch((err) => console.error(`warren node: could not answer the calls left to dead actor ${actorId}:`, err));
    this.ch.publish(this.topo.control, "all.actor-dead", v8.serialize({ id: actorId, cause: encoded }), { type: Kind.actorDead });
  }

  private actorEvent(id: string, event: ActorEvent, creation?: ActorCreationMessage): void {
    this.rpc.notify("actor.event", { id, event, creation });
  }

  private onKillActor(k: { id: string; noRestart: boolean; why?: string }): void {
    if (k.noRestart) this.killed.add(k.id);
    for (const w of this.workers) {
      if (w.actor?.id !== k.id) continue;
      if (k.noRestart) w.actor.final = new ActorDiedError(`the actor ${k.id} was killed: ${k.why ?? "warren.kill() was called"}`);
      w.proc.kill("SIGKILL");
    }
    this.schedule();
  }

  /**
   * The broker gave back a delivery whose consumer died with it (a node that died mid-task): that
   * was an attempt. Publish it again as the next attempt or restart, or answer that it failed.
   */
  private onRedelivered(m: amqp.ConsumeMessage): void {
    const r = onRedelivery(m);
    this.taskCh.ack(m);
    if (r.publish) return this.republish(m, r.headers);
    if (r.actorId) return void this.actorDead(r.actorId, r.error());
    void this.deaths.of(this.topo.shapeQueue(m.fields.routingKey)).then((died) => {
      this.replyToOwner(m.properties.messageId, { task: m.properties.messageId, error: encodeError(r.error(died)) });
    });
  }

  /** Sends a delivery back to its queue for another attempt (or restart), with `headers`. */
  private republish(msg: amqp.ConsumeMessage, headers = nextAttempt(msg.properties.headers)): void {
    publishAgain(this.taskCh, msg, headers);
  }

  private replyToOwner(taskId: string, r: ResultMessage): void {
    this.ch.publish("", this.topo.inbox(ownerOf(taskId)), encodeResults([r]), { type: Kind.result });
  }

  private onCancel(c: { task: string; force: boolean; recursive: boolean }): void {
    this.cancelled.add(c.task);
    for (const w of this.workers) {
      if (w.task?.msg.properties.messageId === c.task) {
        w.task.cancelled = true;
        if (c.force) {
          w.proc.kill("SIGKILL");
          continue;
        }
      }
      // A leased task this node never saw may be running there: the worker decides.
      if (w.ready && !w.actor) this.post(w, { t: "cancel", task: c.task, force: c.force, recursive: c.recursive });
    }
    this.schedule();
  }

  /** Where the workers' stdout and stderr go. */
  private get workersLog(): string {
    return path.join(this.config.sessionDir, "logs", "workers.log");
  }

  /** Stops workers, closes the broker connection and store; a private node also removes all it made. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const t of this.timers) clearInterval(t);
      this.head?.stop();
      clearTimeout(this.balanceTimer);
      const exits = [...this.workers].map((w) => new Promise((res) => {
        w.proc.once("exit", res);
        w.proc.kill("SIGKILL");
      }));
      await Promise.all(exits);
      if (this.config.private) await this.head?.removeCluster();
      await this.conn.close().catch(() => undefined);
      await this.store.close();
      await this.metrics?.close();
      if (this.config.private) fs.rmSync(this.config.sessionDir, { recursive: true, force: true });
      this.onStopped();
    })();
    return this.stopping;
  }
}
