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
 *
 * This file is the wiring and the control: the broker connection and channels, the node's
 * control queue (cancel, kill, object chunks, stop), heartbeats, and what workers say over IPC.
 * It composes the parts, which own the rest: scheduler.ts (pending deliveries, admission,
 * consumer windows, spillback), worker-pool.ts (processes, ranks, idle), actors.ts (hosted
 * actors' restarts and deaths), deliveries.ts (acks), options.ts (every default). The ledger of
 * free resources and the GPU pool are shared by all of them: every change to them is
 * synchronous, so one part never sees another's half done.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as v8 from "node:v8";
import type * as amqp from "amqplib";
import * as os from "node:os";
import { WarrenError } from "../errors";
import { Topology, connectionName, consumeQueue, resubscribe } from "../transport";
import { BrokerLink } from "../transport/link";
import { Kind, RpcReply } from "../wire/kinds";
import { ownerOf } from "../wire/ids";
import { ObjectStore } from "../objects/store";
import { encodeError } from "../serialization";
import { Ledger, Resources, compileDemand } from "../scheduling/shape";
import { ChannelOps, ShapeConsumer } from "./consumer";
import { GpuPool, gpuIds } from "./gpus";
import { RecentDeaths, mayRetry, onRedelivery, workerCrashed } from "../scheduling/retry";
import { MetricsServer, nodeSource, serveMetrics } from "./metrics";
import { HeadServer } from "../head/server";
import { registryFile } from "../core/paths";
import { RpcClient } from "../transport/rpc";
import type { JobEnded, NodeInfo } from "../wire/head";
import { nodeIp } from "./resources";
import { LONG_TASK_MS, type WorkerDeath, type WorkerToNode } from "../wire/ipc";
import { ResultMessage, encodeResults, readHead } from "../wire/messages";
import { type NodeConfig, type NodeOptions, nodeOptions } from "./options";
import { type Running, TaskChannel } from "./deliveries";
import { Scheduler } from "./scheduler";
import { HeldAtLoss } from "./held";
import { type Worker, WorkerPool, takesTasks } from "./worker-pool";
import { Actors } from "./actors";
import { stateAnswer, workerRows } from "./answers";
import { ObjectServer } from "./object-server";
import { NodeLogs, keepLogsOnly } from "./logs";
import { rotationFromEnv } from "../core/log-files";

export class NodeDaemon {
  readonly topo: Topology;
  readonly storePath: string;
  private readonly options: NodeOptions = nodeOptions();
  private readonly free: Ledger;
  private readonly gpus: GpuPool;
  private readonly pool: WorkerPool;
  private readonly logs: NodeLogs;
  /** Leased workers that died lately, by queue (scheduling/retry.ts). */
  private readonly deaths = new RecentDeaths();
  private scheduler!: Scheduler;
  private actors!: Actors;
  private tasks!: TaskChannel;
  private metrics?: MetricsServer;
  /** The cluster's head, when this node is the head node. */
  private head?: HeadServer;
  private link!: BrokerLink;
  /** The node's channel for control, requests and replies; the link's outbox while the connection is down. */
  private ch!: amqp.Channel;
  private ops!: ChannelOps;
  /** The tasks this node held when its connection went, for the deliveries of them that come again. */
  private readonly held = new HeldAtLoss();
  private store!: ObjectStore;
  private objects!: ObjectServer;
  private stopping?: Promise<void>;
  private readonly timers: NodeJS.Timeout[] = [];
  private rpc!: RpcClient;
  private registering?: Promise<void>;

  constructor(readonly config: NodeConfig, private readonly onStopped: () => void = () => undefined) {
    this.topo = new Topology(config.cluster, config.durable ?? false);
    this.free = new Ledger(config.resources);
    this.gpus = new GpuPool(gpuIds(Math.floor(config.resources.GPU ?? 0)));
    this.storePath = path.join(config.sessionDir, "objects.lmdb");
    this.logs = new NodeLogs({ sessionDir: config.sessionDir, rotation: rotationFromEnv(), topo: this.topo, ch: () => this.ch });
    this.pool = new WorkerPool({
      options: this.options,
      cpus: config.resources.CPU ?? 0,
      worker: { address: config.address, cluster: config.cluster, nodeId: config.nodeId, storePath: this.storePath, durable: false },
      logs: this.logs,
      topo: this.topo,
      free: this.free,
      gpus: this.gpus,
      events: { message: (w, m) => this.onWorker(w, m), exit: (w, code, signal) => this.onWorkerExit(w, code, signal) },
    });
  }

  async start(): Promise<void> {
    fs.mkdirSync(path.join(this.config.sessionDir, "logs"), { recursive: true });
    this.store = ObjectStore.open(this.storePath);
    this.objects = await ObjectServer.listen(this.store, this.config.nodeId, this.config.private ? "127.0.0.1" : nodeIp(), this.config.objectManagerPort ?? 0);
    this.rpc = new RpcClient(() => this.ch, this.topo, this.topo.nodeQueue(this.config.nodeId), () => this.link.settling());
    this.compose();
    if (this.config.isHead) {
      const node = this; // the context reads the node's channels as they change
      this.head = new HeadServer({
        get conn() { return node.link.conn; },
        get ch() { return node.ch; },
        up: () => this.link.up,
        topo: this.topo,
        rpc: this.rpc,
        nodeId: this.config.nodeId,
        registryFile: registryFile(this.config.cluster),
        actorDead: (id, err) => this.actors.dead(id, err),
        lost: (reason) => this.exitLost(reason),
      });
      await this.head.openDashboard(this.config.dashboard);
    }
    this.link = await BrokerLink.open(this.config.address, connectionName(this.config.cluster, this.config.isHead ? "head" : "node", this.config.nodeId, this.config.nodeId), {
      restore: (link, again) => this.restore(link, again),
      down: () => this.down(),
      lost: (err) => this.exitLost(err),
    });
    this.head?.startChecks();
    const { nodeId, resources: total } = this.config;
    this.metrics = await serveMetrics(nodeSource({ nodeId, total, free: this.free, pool: this.pool, actors: this.actors, store: this.store, link: this.link, objects: this.objects }));
    await this.register();
    this.timers.push(setInterval(() => void this.heartbeat(), this.options.heartbeatMs));
    this.pool.refill(); // a spare per CPU, so the first tasks do not wait for a process to boot
  }

  /**
   * On every connection: the node's two channels, the exchanges, the head's queue if this is the
   * head node, the control queue; after an outage also the shape consumers, the requests that
   * were out, and the node's registration (the head may have restarted meanwhile).
   */
  private async restore(link: BrokerLink, again: boolean): Promise<amqp.Channel> {
    const ch = await link.conn.createChannel();
    const taskCh = await link.conn.createChannel();
    for (const c of [ch, taskCh]) link.watch(c, (err) => this.exitLost(err));
    ch.on("return", (m: amqp.Message) => this.rpc.returned(m));
    await this.topo.declare(ch);
    this.ch = ch;
    this.tasks.ch = this.ops.ch = taskCh;
    await this.head?.subscribe(again);
    await this.subscribeControl();
    if (!again) return ch;
    this.rpc.resendLost();
    await this.scheduler.restore();
    void this.register(true);
    this.held.forgetAfter(2 * this.options.heartbeatMs + 60_000);
    return ch;
  }

  /** The connection is gone: every delivery this node holds went with it (the broker requeues or lost them; owners send them again). */
  private down(): void {
    this.ch = this.tasks.ch = this.ops.ch = this.link.outbox.channel;
    const running = this.pool.tasks();
    this.held.lost(this.scheduler.connectionLost(), running.map((t) => t.msg));
    for (const t of running) t.acked = true; // its delivery tag died with its channel: never ack it on the next one
    this.rpc.connectionLost();
  }

  /** Every delivery passes here first: after an outage, a second copy of a task still running here is dropped. */
  private screen(m: amqp.ConsumeMessage): boolean {
    const drop = this.held.screen(m, (id) => this.pool.tasks().some((t) => t.msg.properties.messageId === id));
    if (drop) this.tasks.ack(m);
    return drop;
  }

  /**
   * Registers with the head; after an outage (`retry`: the head may be restarting too) tries until
   * it answers. One registration at a time: a second call while one is under way joins it.
   */
  private register(retry = false): Promise<void> {
    this.registering ??= this.registerOnce(retry).finally(() => (this.registering = undefined));
    return this.registering;
  }

  private async registerOnce(retry: boolean): Promise<void> {
    for (;;) {
      try {
        const { shapes, durable, dead } = await this.rpc.head("node.register", this.info());
        if (dead) return this.declaredDead();
        this.topo.durable = this.pool.workerConfig.durable = durable; // before any shape queue or worker
        for (const shape of shapes) await this.scheduler.consumeShape(shape);
        return;
      } catch (err) {
        if (!retry) throw err;
        if (this.stopping) return;
        await new Promise((r) => setTimeout(r, this.options.heartbeatMs));
      }
    }
  }

  /** Declares this node's control queue, binds it, and consumes it (again, if the broker cancelled its consumer). */
  private async subscribeControl(): Promise<void> {
    const q = this.topo.nodeQueue(this.config.nodeId);
    await this.ch.assertQueue(q, { exclusive: true, autoDelete: true });
    await this.ch.bindQueue(q, this.topo.control, `node.${this.config.nodeId}`);
    await this.ch.bindQueue(q, this.topo.control, "all.*");
    const again = () => this.stopping || resubscribe(`node queue ${q}`, () => this.subscribeControl(), (reason) => this.exitLost(reason));
    await consumeQueue(this.ch, q, (m) => this.onControl(m), again, { noAck: true });
  }

  /** The head declared this node dead, so its tasks and actors went elsewhere: serving them here too would run them twice. */
  private declaredDead(): void {
    if (this.stopping) return;
    void this.pool.stop(); // its SIGKILLs are sent at once
    this.exitLost(new WarrenError("declared dead by the head (it heard nothing from this node for too long: hung, or cut off from the broker), and its tasks and actors went to other nodes"));
  }

  /** A node that cannot take or ack tasks exits: the broker and the head recover its work as for any node that died. */
  private exitLost(reason: Error): void {
    if (this.stopping) return;
    console.error(`warren node ${this.config.nodeId}: ${reason.message}; exiting`);
    process.exit(1);
  }

  /** The parts that need the broker: the task channel, the scheduler, the actors (their channels come with each connection). */
  private compose(): void {
    const ops = (this.ops = new ChannelOps());
    this.tasks = new TaskChannel();
    this.scheduler = new Scheduler({
      options: this.options,
      total: this.config.resources,
      free: this.free,
      gpus: this.gpus,
      workers: this.pool,
      channel: this.tasks,
      feed: (shape, units, onMessage) => new ShapeConsumer(ops, this.topo.shapeQueue(shape), units, (m) => this.screen(m) || onMessage(m), {
        declare: () => this.topo.declareShape(ops.ch, shape),
        lost: (reason) => this.exitLost(reason),
      }),
      onRedelivered: (m) => this.onRedelivered(m),
      actorDead: (id, err) => void this.actors.dead(id, err),
    });
    const node = this; // the actors read the node's channels as they change
    this.actors = new Actors({
      options: this.options,
      nodeId: this.config.nodeId,
      get conn() { return node.link.conn; },
      get ch() { return node.ch; },
      topo: this.topo,
      rpc: this.rpc,
      tasks: this.tasks,
      free: this.free,
      gpus: this.gpus,
      pool: this.pool,
      replyToOwner: (taskId, r) => this.replyToOwner(taskId, r),
    });
  }

  /** What a head found in the registry it started on (undefined for a new cluster, or not a head). */
  get restored(): HeadServer["restored"] {
    return this.head?.restored;
  }

  info(): NodeInfo {
    return {
      nodeId: this.config.nodeId,
      isHead: this.config.isHead,
      ip: nodeIp(),
      hostname: os.hostname(),
      storePath: this.storePath,
      metricsPort: this.metrics?.port ?? 0,
      objectManager: this.objects.endpoint,
      resources: this.config.resources,
      dashboardUrl: this.head?.dashboardUrl,
    };
  }

  /**
   * Reports to the head: what is free, and which tasks run here with their delivery already acked
   * (so the head can tell their owners if this node dies). Long tasks are acked here, after the
   * head has heard of them, so a broker's consumer_timeout never applies to them.
   */
  private async heartbeat(): Promise<void> {
    if (!this.link.up) return;
    const now = Date.now();
    const long = this.pool.tasks().filter((t) => !t.acked && now - t.started > LONG_TASK_MS);
    const reply = this.rpc.head("node.heartbeat", {
      nodeId: this.config.nodeId,
      available: this.free.toResources(),
      acked: [
        ...[...this.pool.tasks().filter((t) => t.acked), ...long].map((t) => t.msg.properties.messageId as string),
        ...[...this.pool.all].flatMap((w) => (w.longTask ? [w.longTask] : [])),
      ],
    });
    for (const t of long) this.tasks.ackTask(t);
    const { peers, known, dead } = await reply.catch(() => ({ peers: [], known: true, dead: false }));
    if (dead) return this.declaredDead();
    this.scheduler.peers = peers;
    // A head started again without its registry (another machine, a lost file) learns of this node anew.
    if (!known) void this.register(true);
  }

  /** A task that blocks (or runs long) is acked once the head has been told it runs here. */
  private ackEarly(t: Running): void {
    if (t.acked) return;
    this.rpc.notify("node.running", { nodeId: this.config.nodeId, task: t.msg.properties.messageId });
    this.tasks.ackTask(t); // after the notice on the same channel order: the head hears first
  }

  private onControl(msg: amqp.ConsumeMessage): void {
    switch (msg.properties.type) {
      case Kind.reply: return this.rpc.settle(msg);
      case Kind.shape: {
        const shape = msg.content.toString();
        this.head?.shapeAnnounced(shape);
        return void this.scheduler.consumeShape(shape);
      }
      case Kind.nodeDead:
        if (v8.deserialize(msg.content).nodeId === this.config.nodeId) this.declaredDead();
        return;
      case Kind.cancel: {
        const c = v8.deserialize(msg.content);
        this.scheduler.cancel(c.task);
        this.pool.cancel(c);
        return this.scheduler.schedule();
      }
      case Kind.killActor: return this.onKillActor(v8.deserialize(msg.content));
      case Kind.jobEnded: return this.onJobEnded(v8.deserialize(msg.content));
      case Kind.fetchObject: return this.answer(msg, this.objects.chunk(v8.deserialize(msg.content)));
      case Kind.objectEndpoint: return this.answer(msg, { ok: true, value: this.objects.endpoint });
      case Kind.nodeWorkers: return this.answer(msg, { ok: true, value: workerRows(this.pool) });
      case Kind.stateQuery: return this.answer(msg, { ok: true, value: stateAnswer(this.config.nodeId, this.pool, this.head) });
      case Kind.readLogs: return this.logs.serve(msg);
      case Kind.freeObject: return this.freeObject(msg.content);
      case Kind.stop: return void this.stop();
    }
  }

  /** Frees an object here and the copies other nodes took of it. */
  private freeObject(content: Buffer): void {
    const { id } = v8.deserialize(content);
    this.store.remove(id);
    for (const node of this.objects.freed(id)) this.ch.publish(this.topo.control, `node.${node}`, content, { type: Kind.freeObject });
  }

  /** Answers a request on the control queue (the reply queue is the asker's). */
  private answer(msg: amqp.ConsumeMessage, reply: RpcReply): void {
    this.ch.publish("", msg.properties.replyTo, v8.serialize(reply), { type: Kind.reply, correlationId: msg.properties.correlationId });
  }

  private onWorker(w: Worker, m: WorkerToNode): void {
    switch (m.t) {
      case "ready":
        this.pool.ready(w);
        return this.scheduler.schedule();
      case "done": {
        const t = w.task!;
        w.task = undefined;
        if (m.retry) this.tasks.republish(t.msg);
        this.tasks.ackTask(t);
        if (this.options.leases) return; // the slot stays the worker's lease
        this.pool.release(w);
        this.pool.idleAgain(w);
        return this.scheduler.schedule();
      }
      case "lease-returned":
        this.pool.release(w);
        this.pool.idleAgain(w);
        return this.scheduler.schedule();
      case "long":
        w.longTask = m.task;
        this.rpc.notify("node.running", { nodeId: this.config.nodeId, task: m.task });
        this.pool.post(w, { t: "ack-long", task: m.task });
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
          this.scheduler.schedule();
        }
        return;
      }
      case "unblocked":
        if (w.lease?.lent) {
          w.lease.lent = false;
          this.free.take(compileDemand({ CPU: w.lease.demand.CPU }));
        }
        return;
      case "actor-alive":
        this.actors.alive(w, m.id, m.pid);
        return this.scheduler.schedule();
      case "actor-failed":
        this.actors.constructorFailed(w, m.id, m.error);
        return this.scheduler.schedule();
      case "actor-exit":
        this.actors.exited(w, m.id);
        return this.scheduler.schedule();
      case "actor-stopped":
        this.actors.stopped(w, m.id);
        return this.scheduler.schedule();
    }
  }

  private onWorkerExit(w: Worker, code: number | null, signal: string | null): void {
    if (this.stopping) return;
    const how = signal ?? `exit code ${code}`;
    const death = this.logs.died(w.logFile, w.proc.pid!, how);
    if (!takesTasks(w)) for (const a of this.pool.actorsOf(w)) this.actors.workerExit(w, a, death);
    else {
      // A leased task it held goes back to the queue by itself (the broker requeues it): whoever
      // gets it on this node hears how the worker died, to say so if it must fail the task.
      if (w.lease) {
        this.deaths.note(w.lease.queue, death);
        for (const o of this.pool.all) if (o.ready && takesTasks(o)) this.pool.post(o, { t: "worker-died", queue: w.lease.queue, death });
      }
      if (w.task) this.onTaskWorkerExit(w.task, death);
      this.pool.release(w);
    }
    this.scheduler.schedule();
  }

  private onTaskWorkerExit(t: Running, death: WorkerDeath): void {
    const attempt: number = t.msg.properties.headers?.attempt ?? 0;
    const { maxRetries } = readHead(t.msg.content);
    if (t.cancelled) {
      // The owner already answered itself with TaskCancelledError.
    } else if (mayRetry(attempt, maxRetries)) {
      this.tasks.republish(t.msg);
    } else {
      const err = workerCrashed(t.msg.properties.type, attempt, maxRetries, death);
      this.replyToOwner(t.msg.properties.messageId, { task: t.msg.properties.messageId, error: encodeError(err) });
    }
    this.tasks.ackTask(t);
  }

  /**
   * A job ended: its tasks waiting here or still to come are dropped, those running on this
   * node's workers stop (a worker the node handed one is killed, as by a forced cancel; a leased
   * one stops itself), and the objects its driver owned here are freed.
   */
  private onJobEnded({ jobId }: JobEnded): void {
    this.scheduler.jobEnded(jobId);
    this.pool.jobEnded(jobId);
    this.store.removePrefix(jobId); // a driver's job id is its owner id, which begins every id it owns
    this.scheduler.schedule();
  }

  private onKillActor(k: { id: string; noRestart: boolean; why?: string }): void {
    if (k.noRestart) this.scheduler.kill(k.id);
    this.actors.kill(k);
    this.scheduler.schedule();
  }

  /**
   * The broker gave back a delivery whose consumer died with it (a node that died mid-task): that
   * was an attempt. Publish it again as the next attempt or restart, or answer that it failed.
   */
  private onRedelivered(m: amqp.ConsumeMessage): void {
    const r = onRedelivery(m);
    this.tasks.ack(m);
    if (r.publish) return this.tasks.republish(m, r.headers);
    if (r.actor) return void this.actors.dead(r.actor, r.error());
    void this.deaths.of(this.topo.shapeQueue(m.fields.routingKey)).then((died) => {
      this.replyToOwner(m.properties.messageId, { task: m.properties.messageId, error: encodeError(r.error(died)) });
    });
  }

  private replyToOwner(taskId: string, r: ResultMessage): void {
    this.ch.publish("", this.topo.inbox(ownerOf(taskId)), encodeResults([r]), { type: Kind.result });
  }

  /** Stops workers, closes the broker connection and store; a private node also removes all it made. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const t of this.timers) clearInterval(t);
      this.head?.stop();
      this.scheduler?.stop();
      await this.pool.stop();
      if (this.config.private) await this.head?.removeCluster();
      await this.head?.close();
      await this.link?.close();
      await this.objects.close();
      await this.store.close();
      await this.metrics?.close();
      if (this.config.private) keepLogsOnly(this.config.sessionDir);
      this.onStopped();
    })();
    return this.stopping;
  }
}
