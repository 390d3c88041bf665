/**
 * node scheduler (Ray's local task manager): the deliveries of shape queues this node holds
 * before they run. It owns the pending deliveries in arrival order, each shape's consumer and its
 * window (prefetch), the cancelled tasks and killed actors it must not start, and spillback. It
 * admits a delivery when its demand fits what the ledger has free, an idle worker waits and its
 * GPUs are free; it starts workers for what could run but waits for one; it gives back what a peer
 * could start sooner. It sees workers, the ledger's owner and the broker only through the small
 * interfaces below, so it is tested against fakes (test/unit/scheduler.test.ts).
 *
 * Invariants a change must keep:
 * - Every delivery it holds leaves it once: handed to a worker (whose end acks it), acked and
 *   dropped (cancelled, or its actor killed), or given back; the channel closes on a second ack.
 * - Admission takes from the ledger and the GPU pool in the same step as it hands the task over:
 *   nothing between them yields, so no other admission sees the resources free twice.
 * - A delivery that does not fit now waits and keeps its place; later ones that fit go first.
 * - Workers are started for the deliveries that fit what is free but wait for a worker, less
 *   those already starting: not one per delivery, so a burst does not fork a process per task.
 * - A shape's consumer window counts its unacked deliveries, running ones included: a window is
 *   renewed when tasks still running here hold it, else a free slot sits idle behind a long task.
 */
import type * as amqp from "amqplib";
import { ActorDiedError } from "../errors";
import { BoundedSet } from "../bounded";
import { Demand, Ledger, Resources, compileDemand, fits, parseShape } from "../scheduling/shape";
import type { Peer } from "../wire/head";
import { type ActorName, creationActor, sharedCreation } from "../wire/descriptors";
import { readHead } from "../wire/messages";
import type { Delivery, Running, TaskChannel } from "./deliveries";
import type { ShapeConsumer } from "./consumer";
import type { GpuPool } from "./gpus";
import type { NodeOptions } from "./options";

/** What the scheduler needs of the worker pool (worker-pool.ts). */
export interface WorkerSlots {
  /** Workers ready and without work. */
  readonly idle: number;
  /** Workers started and not ready yet. */
  readonly starting: number;
  /** Starts one more worker; it counts in `starting` until it is ready. */
  spawn(): void;
  /** Hands a task to an idle worker (there is one); the pool reports its end to the daemon. */
  hand(t: Running): void;
  /** Tasks of the consumer `consumerTag` running on workers with their delivery unacked. */
  unacked(consumerTag: string): number;
}

/** A shape's consumer, as ShapeConsumer (consumer.ts) is. */
export type ShapeFeed = Pick<ShapeConsumer, "active" | "units" | "room" | "consume" | "pause" | "connectionLost" | "restore">;

export interface SchedulerDeps {
  options: Pick<NodeOptions, "spillMs" | "leases" | "maxWindow" | "maxSlots" | "cancelledMemory" | "killedMemory">;
  /** What the node has in all. */
  total: Resources;
  /** What it has free now; others give back to it and take from it too (leases, actors, get()). */
  free: Ledger;
  gpus: Pick<GpuPool, "allocate">;
  workers: WorkerSlots;
  channel: Pick<TaskChannel, "ack" | "giveBack">;
  /** Starts nothing: a consumer of `shape`'s queue that hands its deliveries to `onMessage`. */
  feed(shape: string, units: Demand, onMessage: (m: amqp.ConsumeMessage) => void): ShapeFeed;
  /** A delivery the broker gave back after the consumer holding it died (scheduling/retry.ts). */
  onRedelivered(m: amqp.ConsumeMessage): void;
  /** Buries an actor whose creation is dropped here (the actors part). */
  actorDead(actor: ActorName, error: Error): void;
}

export class Scheduler {
  private readonly pending: Delivery[] = [];
  /** Every shape announced in the cluster, with its consumer if this node can ever run it. */
  private readonly shapes = new Map<string, ShapeFeed | undefined>();
  private readonly cancelled: BoundedSet<string>;
  /** Jobs whose end the head announced: their tasks, waiting or still to come, are dropped. */
  private readonly endedJobs = new BoundedSet<string>(1024);
  /** Actors killed with noRestart (every such kill, placed here or not), the newest killedMemory of them. */
  private readonly killed: BoundedSet<string>;
  /** Other alive nodes and what they had free at the last heartbeat. */
  peers: Peer[] = [];
  private balanceTimer?: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly deps: SchedulerDeps) {
    this.cancelled = new BoundedSet<string>(deps.options.cancelledMemory);
    this.killed = new BoundedSet<string>(deps.options.killedMemory);
  }

  /** Starts consuming a shape's queue if this node could ever run it. */
  async consumeShape(shape: string): Promise<void> {
    if (this.shapes.has(shape)) return;
    const demand = parseShape(shape);
    if (!fits(demand, this.deps.total)) return void this.shapes.set(shape, undefined);
    const units = compileDemand(demand);
    const consumer = this.deps.feed(shape, units, (m) => {
      if (m.fields.redelivered) return this.deps.onRedelivered(m);
      if (this.endedJobs.size > 0 && this.ofEndedJob(m)) return this.deps.channel.ack(m); // nobody waits for it
      this.pending.push({ msg: m, demand, units, shape, received: Date.now() });
      this.schedule();
    });
    this.shapes.set(shape, consumer);
    const { leases, maxWindow } = this.deps.options;
    await consumer.consume(leases ? Math.max(1, this.deps.free.count(units, maxWindow)) : this.prefetch(units));
  }

  /**
   * The connection went, and the deliveries waiting here with it (the broker requeues them, or
   * lost them with a restart and their owners send them again): returns them, dropped.
   */
  connectionLost(): amqp.ConsumeMessage[] {
    for (const consumer of this.shapes.values()) consumer?.connectionLost();
    return this.pending.splice(0).map((d) => d.msg);
  }

  /** A new connection: every shape consumer declares its queue and consumes again. */
  async restore(): Promise<void> {
    for (const consumer of this.shapes.values()) await consumer?.restore();
  }

  /** A task cancelled: its delivery, waiting or still to come, is dropped. Call schedule() after. */
  cancel(taskId: string): void {
    this.cancelled.add(taskId);
  }

  /** A job ended: its tasks (not its actors' creations: the head kills those it must), waiting or still to come, are dropped. Call schedule() after. */
  jobEnded(jobId: string): void {
    this.endedJobs.add(jobId);
    for (let i = this.pending.length - 1; i >= 0; i--) {
      const m = this.pending[i].msg;
      if (!this.ofEndedJob(m)) continue;
      this.pending.splice(i, 1);
      this.deps.channel.ack(m);
    }
  }

  /** A task (not an actor's creation) of a job that has ended. */
  private ofEndedJob(m: amqp.ConsumeMessage): boolean {
    return !m.properties.headers?.actor && this.endedJobs.has(readHead(m.content).job);
  }

  /** An actor killed for good: its creation, waiting or still to come, is dropped. Call schedule() after. */
  kill(actorId: string): void {
    this.killed.add(actorId);
  }

  /** Admits pending deliveries in arrival order, as far as resources and idle workers allow. */
  schedule(): void {
    const { free, gpus, workers } = this.deps;
    // What deliveries still waiting for a worker would take: a worker is started for each of those
    // (counting those already starting), not for every delivery that fits what is free.
    let wouldTake: Ledger | undefined;
    let waitingForWorker = 0;
    for (let i = 0; i < this.pending.length; ) {
      const d = this.pending[i];
      const actor = creationActor(d.msg.properties.headers);
      if (this.cancelled.has(d.msg.properties.messageId) || (actor && this.killed.has(actor.id))) {
        this.pending.splice(i, 1);
        this.deps.channel.ack(d.msg);
        if (actor) this.deps.actorDead(actor, new ActorDiedError(`the actor ${actor.id} was killed before it started`));
        continue;
      }
      if (!free.fits(d.units)) { i++; continue; }
      // A shared actor's creation needs no idle worker: the pool places it in a host process.
      if (workers.idle === 0 && !sharedCreation(d.msg.properties.headers)) {
        wouldTake ??= free.clone();
        if (wouldTake.fits(d.units)) {
          wouldTake.take(d.units);
          waitingForWorker++;
        }
        i++;
        continue;
      }
      const gpuIds = gpus.allocate(d.demand.GPU ?? 0);
      if (!gpuIds) { i++; continue; }
      this.pending.splice(i, 1);
      free.take(d.units);
      workers.hand({ ...d, gpuIds, cancelled: false, started: Date.now(), acked: false });
    }
    for (let n = waitingForWorker - workers.starting; n > 0; n--) workers.spawn();
    this.balance();
  }

  /**
   * Stops spillback's timer and every consumer: nothing is balanced or consumed after, so a shape
   * queue a private cluster's head then deletes is not declared again by its consumer here.
   */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.balanceTimer);
    for (const consumer of this.shapes.values()) void consumer?.pause();
  }

  /**
   * Without leases, the node takes every task of a shape itself: enough in flight (they stay
   * unacked while they run) to keep each slot busy with one waiting behind it, and no more, so
   * the rest of a burst stays in the queue for other nodes.
   */
  private prefetch(units: Demand): number {
    const { maxWindow, maxSlots } = this.deps.options;
    return Math.min(maxWindow, 2 * new Ledger(this.deps.total).count(units, maxSlots) + 2);
  }

  /**
   * Spillback: while this node holds deliveries of a shape it cannot start and a peer has room for
   * them, it stops consuming that shape and gives back what has waited spillMs, so an idle node
   * takes it. It consumes again once nothing of that shape waits here.
   */
  private balance(): void {
    clearTimeout(this.balanceTimer);
    if (this.stopped) return;
    const { leases, maxWindow, spillMs } = this.deps.options;
    const now = Date.now();
    let recheck = false;
    for (const [shape, consumer] of this.shapes) {
      if (!consumer) continue;
      const waiting = this.pending.filter((d) => d.shape === shape);
      if (waiting.length === 0) {
        if (!leases) {
          if (!consumer.active) void consumer.consume(this.prefetch(consumer.units));
          continue;
        }
        // Take more of a shape only while a slot for it is free (leased workers pull the rest),
        // in a window renewed when tasks still running here hold it: else a free slot could sit
        // idle behind a long task, with the shape's queue full.
        const free = this.deps.free.count(consumer.units, maxWindow);
        if (free === 0) {
          if (consumer.active) void consumer.pause();
        } else if (consumer.room((tag) => this.unacked(tag)) < free) void consumer.consume(free);
        continue;
      }
      if (!this.peers.some((p) => fits(waiting[0].demand, p.available))) continue;
      if (consumer.active) void consumer.pause();
      for (const d of waiting) {
        if (now - d.received < spillMs) { recheck = true; continue; }
        this.pending.splice(this.pending.indexOf(d), 1);
        this.deps.channel.giveBack(d.msg);
      }
    }
    if (recheck || this.pending.length > 0) this.balanceTimer = setTimeout(() => this.balance(), spillMs);
  }

  /** Deliveries of the consumer `tag` this node holds unacked: waiting, or running on a worker. */
  private unacked(tag: string): number {
    let n = 0;
    for (const d of this.pending) if (d.msg.fields.consumerTag === tag) n++;
    return n + this.deps.workers.unacked(tag);
  }
}
