/**
 * head: the server of the cluster's head (Ray's GCS server). It runs inside the head node's
 * daemon process and owns the head queue, which is exclusive to its connection: requests
 * (wire/head.ts) are answered one at a time, in arrival order, from the registry, so a name is
 * given to one actor only. It watches the nodes: one that stops reporting is asked about at the
 * broker, and once dead its lost tasks go back to their owners and its actors are restarted or
 * buried; actors whose owner has exited are killed (Ray's rule for non-detached actors).
 */
import * as v8 from "node:v8";
import type * as amqp from "amqplib";
import { ActorDiedError, NodeDiedError, WarrenError } from "../errors";
import { encodeError } from "../serialization";
import { type Topology, consumeQueue, countFromEnv, resubscribe, secondsFromEnv } from "../transport";
import { queueAbsent, queueInfo } from "../transport/queues";
import { mayRetry } from "../scheduling/retry";
import { Kind, RpcReply } from "../wire/kinds";
import { ownerOf } from "../wire/ids";
import type { Handlers, HeadRequest, HeadRequests, InfeasibleNotice, JobEnded, PayloadOf, ReplyOf, ShapeDemand } from "../wire/head";
import type { RpcClient } from "../transport/rpc";
import { stateQueries } from "../core/state";
import type { ActorName } from "../wire/descriptors";
import { HeadRegistry } from "./registry";
import { RegistryStore } from "./store";
import { type Dashboard, type DashboardOptions, serveDashboard } from "./dashboard";
import { dashboardRoutes } from "./dashboard-views";
import { TaskHistory } from "./events";

/** The head's timings; each is the one place its value is set. */
export const HEAD_DEFAULTS = {
  /** How often the head looks for silent nodes and gone owners. */
  checkMs: 500,
  /** How long a node may be silent before the head asks the broker whether it is gone. */
  silenceMs: 2000,
  /**
   * A node that answers the broker but has not reported for this long is hung: dead. Told so (the
   * node-dead broadcast, or the answer to its next heartbeat or registration), it exits if it
   * ever runs again. WARREN_HEAD_HUNG_S sets it for a cluster's head.
   */
  hungMs: secondsFromEnv("WARREN_HEAD_HUNG_S", 15_000),
  /**
   * After the head's connection comes back, how long it waits before asking the broker about nodes
   * and owners: their exclusive queues are gone with the old connections until each reconnects.
   */
  reconnectGraceMs: 10_000,
  /**
   * How often the head says again that a shape no alive node can run still has tasks or actors
   * waiting in its queue (it says so at once when the shape is announced). WARREN_INFEASIBLE_REPEAT_S
   * sets it for a cluster's head.
   */
  infeasibleRepeatMs: secondsFromEnv("WARREN_INFEASIBLE_REPEAT_S", 30_000),
  /**
   * Dead actors the registry keeps (for the state API and the death of calls to them), the oldest
   * death dropped first, from memory and the registry's file: Ray's
   * RAY_maximum_gcs_destroyed_actor_cached_count. WARREN_DEAD_ACTORS_KEPT sets it for a cluster's head.
   * @default 100000
   */
  deadActorsKept: countFromEnv("WARREN_DEAD_ACTORS_KEPT", 100_000),
  /**
   * Tasks the head's history keeps (head/events.ts), per job and in all, the oldest dropped
   * first: Ray's 10,000 per job and task_events_max_num_task_in_gcs. WARREN_TASKS_KEPT_PER_JOB
   * and WARREN_TASKS_KEPT set them for a cluster's head.
   * @default 10000 per job, 100000 in all
   */
  tasksKeptPerJob: countFromEnv("WARREN_TASKS_KEPT_PER_JOB", 10_000),
  tasksKept: countFromEnv("WARREN_TASKS_KEPT", 100_000),
  /** At most this many tasks in one answer of the history (well under the broker's max_message_size). */
  historyPage: 10_000,
};

export interface HeadContext {
  /** The head node's connection and channel as they are now (they change when a lost connection comes back). */
  readonly conn: amqp.ChannelModel;
  readonly ch: amqp.Channel;
  /** Whether the connection is up. */
  up(): boolean;
  topo: Topology;
  /** The head node's requests (its dashboard gathers tasks and objects, and asks nodes for their workers). */
  rpc: RpcClient;
  /** The node this head runs in (it never checks on itself). */
  nodeId: string;
  /** Where the registry is kept (core/paths.ts registryFile), so that a head started again on it knows the cluster. */
  registryFile: string;
  /** Buries an actor: records its death, answers the calls left in its mailbox, tells everyone. */
  actorDead(actor: ActorName, error: Error): Promise<void>;
  /** The head can no longer take requests (its node then exits). */
  lost(reason: Error): void;
}

export class HeadServer {
  readonly registry: HeadRegistry;
  /** What the registry it started on knew: undefined for a new cluster. */
  readonly restored?: { nodes: number; actors: number; durable: boolean };
  private readonly store: RegistryStore;
  private readonly history = new TaskHistory(HEAD_DEFAULTS.tasksKeptPerJob, HEAD_DEFAULTS.tasksKept);
  /** Until when the checks of nodes and owners wait, after the connection came back. */
  private graceUntil = 0;
  private readonly handlers: Handlers<HeadRequests>;
  /** When the head last said each infeasible shape was so. */
  private readonly infeasibleSaid = new Map<string, number>();
  /** Owners found gone whose non-detached actors were killed and are not all dead yet (then forgotten). */
  private readonly goneOwners = new Set<string>();
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private dashboard?: Dashboard;

  constructor(private readonly ctx: HeadContext) {
    this.store = RegistryStore.open(ctx.registryFile);
    this.registry = new HeadRegistry(this.store, HEAD_DEFAULTS.deadActorsKept);
    // Durable mode is the cluster's, decided by its first head: its queues were declared so.
    const saved = this.store.cluster();
    if (saved) ctx.topo.durable = saved.durable;
    else this.store.putCluster({ durable: ctx.topo.durable });
    const nodes = this.registry.listNodes().length;
    if (nodes > 0) this.restored = { nodes, actors: this.registry.list().length, durable: ctx.topo.durable };
    // Started on a registry it kept: the nodes it lists get the grace a reconnection gets.
    if (this.restored) this.graceUntil = Date.now() + HEAD_DEFAULTS.reconnectGraceMs;
    const durable = () => ({ durable: ctx.topo.durable });
    this.handlers = {
      ...this.registry.handlers,
      "shape.demand": () => this.demand(),
      "node.register": (p) => ({ ...this.registry.registerNode(p), ...durable() }),
      "cluster.info": durable,
      "actor.kill": (p) => this.kill(p.id, p.noRestart, p.why),
      "job.end": (p) => this.endJob(p.jobId, "SUCCEEDED", "the driver called shutdown()"),
      "task.events": (p) => this.history.record(p),
      "task.history": (p) => {
        const page = this.history.page(Math.min(p.limit, HEAD_DEFAULTS.historyPage), p.before, p.filters);
        return p.ids?.length ? { ...page, entries: [...page.entries, ...this.history.of(p.ids)] } : page;
      },
    };
  }

  /**
   * Starts watching the nodes and owners (once the head's queue is consumed). A head started on
   * a kept registry holds the head queue, so the head before it is gone: its node is dead now.
   */
  startChecks(): void {
    for (const n of this.registry.aliveNodes()) {
      if (!n.info.isHead || n.info.nodeId === this.ctx.nodeId) continue;
      const lost = this.registry.nodeDied(n.info.nodeId);
      if (lost) this.onNodeDied(n.info.nodeId, lost);
    }
    this.timer = setInterval(() => void this.checkNodes(), HEAD_DEFAULTS.checkMs);
  }

  /**
   * Declares the head queue and consumes it, on each connection (`reconnected` after an outage: every
   * node and owner then gets a grace to reconnect before the head asks the broker about them),
   * and again if the broker cancelled its consumer.
   */
  async subscribe(reconnected = false): Promise<void> {
    if (reconnected) this.graceUntil = Date.now() + HEAD_DEFAULTS.reconnectGraceMs;
    const { ch, topo } = this.ctx;
    await ch.assertQueue(topo.head, { exclusive: true, autoDelete: true });
    const again = () => this.stopped || resubscribe(`the head queue ${topo.head}`, () => this.subscribe(), this.ctx.lost);
    await consumeQueue(ch, topo.head, (m) => this.onRequest(m), again, { noAck: true });
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /** Stops the dashboard, writes what the registry has not written yet, and closes its store. */
  async close(): Promise<void> {
    await this.dashboard?.close();
    return this.store.close();
  }

  /** Serves the web dashboard (head/dashboard.ts) where `options` say; none: no dashboard. */
  async openDashboard(options: DashboardOptions | undefined): Promise<void> {
    if (!options) return;
    const { rpc } = this.ctx;
    this.dashboard = await serveDashboard(options, dashboardRoutes({
      cluster: this.ctx.topo.cluster,
      queries: stateQueries(() => ({ head: (kind, payload) => this.ask(kind, payload), gather: (what) => rpc.gather(what) })),
      available: (nodeId) => this.registry.aliveNodes().find((n) => n.info.nodeId === nodeId)?.available,
      workers: (nodeId) => rpc.node(nodeId, "node.workers", {}),
      logs: (nodeId, tail) => rpc.node(nodeId, "logs.read", { tail }),
    }));
  }

  /** The dashboard's address, when it serves one. */
  get dashboardUrl(): string | undefined {
    return this.dashboard?.url;
  }

  /** A request of this process, answered as one from the head queue would be. */
  private async ask<K extends HeadRequest>(kind: K, payload: PayloadOf<HeadRequests, K>): Promise<ReplyOf<HeadRequests, K>> {
    return (this.handlers[kind] as (p: typeof payload) => ReplyOf<HeadRequests, K> | Promise<ReplyOf<HeadRequests, K>>)(payload);
  }

  /** Who a state query waits for: the alive nodes and running drivers. */
  alive(): Record<string, string> {
    return this.registry.alive();
  }

  /** A shape announced on the control exchange (every process announces what it declares). */
  shapeAnnounced(shape: string): void {
    this.registry.announceShape(shape);
    if (this.registry.infeasible(shape)) this.sayInfeasible(shape);
  }

  /**
   * Tells every process that no alive node can run `shape`, with what the nodes have: each one
   * that waits on it warns, or fails what waits (core/infeasible.ts).
   */
  private sayInfeasible(shape: string): void {
    const { ch, topo } = this.ctx;
    this.infeasibleSaid.set(shape, Date.now());
    const notice: InfeasibleNotice = { shape, nodes: this.registry.aliveNodes().map((n) => n.info.resources) };
    ch.publish(topo.control, "all.infeasible", v8.serialize(notice), { type: Kind.infeasible });
  }

  /** Says again, every infeasibleRepeatMs, which infeasible shapes still have messages waiting in their queue. */
  private async repeatInfeasible(now: number): Promise<void> {
    for (const shape of this.registry.infeasibleShapes()) {
      if (now - (this.infeasibleSaid.get(shape) ?? 0) < HEAD_DEFAULTS.infeasibleRepeatMs) continue;
      this.infeasibleSaid.set(shape, now);
      const pending = (await queueInfo(this.ctx.conn, this.ctx.topo.shapeQueue(shape)))?.messageCount ?? 0;
      if (pending > 0) this.sayInfeasible(shape);
    }
  }

  private onRequest(m: amqp.ConsumeMessage): void {
    const reply = (r: RpcReply) => m.properties.replyTo &&
      this.ctx.ch.publish("", m.properties.replyTo, v8.serialize(r), { type: Kind.reply, correlationId: m.properties.correlationId });
    const kind = m.properties.type as HeadRequest;
    const handler = this.handlers[kind] as ((payload: unknown) => unknown) | undefined;
    try {
      if (!handler) throw new WarrenError(`the head does not answer "${kind}"`);
      const value = handler(v8.deserialize(m.content));
      if (value instanceof Promise) value.then((v) => reply({ ok: true, value: v }), (err) => reply({ ok: false, error: encodeError(err) }));
      else reply({ ok: true, value });
    } catch (err) {
      reply({ ok: false, error: encodeError(err) });
    }
  }

  /**
   * warren.kill(): every node kills the actor's worker (and, with noRestart, drops its creation
   * should it come); answered once the incarnation is over, so that no call made after is
   * answered by it. An ALIVE actor's node reports that once its worker has exited. One not
   * placed has no worker to answer calls: with noRestart the head buries it now, as its creation
   * may never reach a node (infeasible, or waiting for resources).
   */
  private async kill(id: string, noRestart: boolean, why = "warren.kill() was called"): Promise<void> {
    const state = this.registry.state(id);
    if (state === "DEAD") return;
    const over = state === "ALIVE" ? this.registry.incarnationOver(id, !noRestart) : undefined;
    this.ctx.ch.publish(this.ctx.topo.control, "all.kill-actor", v8.serialize({ id, noRestart, why }), { type: Kind.killActor });
    if (over) return over;
    if (state !== undefined && noRestart) await this.ctx.actorDead({ id, className: this.registry.info(id)?.className ?? "" }, new ActorDiedError(`the actor ${id} was killed before it started: ${why}`));
  }

  /** What waits in each shape's queue, and whether any alive node could ever run it (for `warren status`). */
  private async demand(): Promise<ShapeDemand[]> {
    const infeasible = new Set(this.registry.infeasibleShapes());
    const rows = [];
    for (const shape of this.registry.shapes.keys()) {
      const pending = (await queueInfo(this.ctx.conn, this.ctx.topo.shapeQueue(shape)))?.messageCount ?? 0;
      rows.push({ shape, pending, infeasible: infeasible.has(shape) });
    }
    return rows;
  }

  /**
   * A node silent for a while is asked about at the broker: its control queue is exclusive to its
   * connection, so a passive declare that finds no queue means the connection (the node) is gone.
   */
  private async checkNodes(): Promise<void> {
    const { conn, topo } = this.ctx;
    const now = Date.now();
    if (!this.ctx.up() || now < this.graceUntil) return;
    for (const n of this.registry.aliveNodes()) {
      if (n.info.nodeId === this.ctx.nodeId || now - n.lastSeen < HEAD_DEFAULTS.silenceMs) continue;
      const gone = await queueAbsent(conn, topo.nodeQueue(n.info.nodeId));
      if (!gone && now - n.lastSeen < HEAD_DEFAULTS.hungMs) continue;
      const lost = this.registry.nodeDied(n.info.nodeId);
      if (lost) this.onNodeDied(n.info.nodeId, lost);
    }
    await this.repeatInfeasible(now);
    // A driver that exits without shutdown() (a crash, SIGKILL) is seen by its exclusive inbox, gone.
    for (const job of this.registry.runningJobs()) {
      if (await queueAbsent(conn, topo.inbox(job.job_id))) this.endJob(job.job_id, "FAILED", "the driver exited without shutdown()");
    }
    // Ray's rule: an actor that is not detached lives only as long as the process that made it
    // (a driver's are its job's, which the check above ends).
    const owners = this.registry.actorOwners();
    for (const owner of this.goneOwners) if (!owners.has(owner)) this.goneOwners.delete(owner);
    for (const [owner, actors] of owners) {
      if (this.goneOwners.has(owner) || this.registry.isJob(owner) || !(await queueAbsent(conn, topo.inbox(owner)))) continue;
      this.goneOwners.add(owner);
      for (const a of actors) void this.kill(a.handle.id, true, "its owner (the process that created it) has exited");
    }
  }

  /**
   * A job's end (Ray's job finished): every node drops its queued tasks and stops its running
   * ones, and frees the objects its driver owned (node/daemon.ts); its non-detached actors die.
   */
  private endJob(jobId: string, status: "SUCCEEDED" | "FAILED", message: string): void {
    if (!this.registry.endJob(jobId, status, message)) return;
    this.history.jobEnded(jobId, message);
    const { ch, topo } = this.ctx;
    const ended: JobEnded = { jobId };
    ch.publish(topo.control, "all.job-ended", v8.serialize(ended), { type: Kind.jobEnded });
    for (const a of this.registry.actorsOfJob(jobId)) void this.kill(a.handle.id, true, `its job ${jobId} has ended`);
  }

  /**
   * Tells everyone, tells owners which of their tasks were lost with it (their deliveries were
   * acked; the rest the broker gives to other nodes by itself), and restarts (or buries) the
   * actors that lived there.
   */
  private onNodeDied(nodeId: string, lost: string[]): void {
    const { ch, topo } = this.ctx;
    ch.publish(topo.control, "all.node-dead", v8.serialize({ nodeId }), { type: Kind.nodeDead });
    const byOwner = new Map<string, string[]>();
    for (const task of lost) byOwner.set(ownerOf(task), [...(byOwner.get(ownerOf(task)) ?? []), task]);
    for (const [owner, tasks] of byOwner) {
      ch.publish("", topo.inbox(owner), v8.serialize({ nodeId, tasks }), { type: Kind.tasksLost });
    }
    for (const a of this.registry.actorsOn(nodeId)) {
      const creation = a.creation;
      if (!creation) continue;
      const h = creation.headers;
      const restarts: number = h.restarts ?? 0;
      const maxRestarts: number = h.maxRestarts ?? 0;
      if (mayRetry(restarts, maxRestarts)) {
        this.registry.onEvent(a.handle.id, { type: "RESTARTING" });
        ch.publish(topo.tasks, creation.routingKey, creation.body, { messageId: creation.messageId, type: creation.type, headers: { ...h, restarts: restarts + 1 }, persistent: topo.durable });
      } else {
        void this.ctx.actorDead(a.handle, new NodeDiedError(`the actor ${a.handle.className} (${a.handle.id}) died with its node ${nodeId} and has used its ${maxRestarts} restart(s) (maxRestarts)`));
      }
    }
  }

  /** A private cluster's end: removes the shape queues, mailboxes and exchanges it made. */
  async removeCluster(): Promise<void> {
    const { conn, topo } = this.ctx;
    const ch = await conn.createChannel().catch(() => undefined);
    if (!ch) return;
    ch.on("error", () => undefined);
    for (const shape of this.registry.shapes.keys()) await ch.deleteQueue(topo.shapeQueue(shape)).catch(() => undefined);
    for (const a of this.registry.list()) await ch.deleteQueue(topo.mailbox(a.handle)).catch(() => undefined);
    await topo.remove(ch).catch(() => undefined);
  }
}
