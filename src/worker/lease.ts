/**
 * A lease (Ray's worker lease): the node has lent this worker one slot of a shape (the resources
 * and GPUs stay reserved for it), so the worker takes that shape's tasks from the broker itself
 * and acks them itself, with no IPC through the node per task. It acks in batches (one ack with
 * `multiple` for every task run since the last), so the broker refills its prefetch in bursts and
 * a burst's results and ack leave in one write: on these machines a socket write is tens of µs.
 * After `leaseIdleMs` (defaults.ts) without a delivery it stops consuming, runs what had already
 * arrived, and gives the slot back. While its task waits in get() it takes nothing (the task it waits for
 * could be the one it would hold).
 *
 * Its consumer has a priority (the node gives each worker its own, the node's own consumer has
 * none): the broker hands a task to the highest-priority lease with room, and to the node only
 * when every lease is full. So a steady trickle of tasks keeps one worker busy and warm instead
 * of waking each in turn (sync tasks: about 900 -> 1,400/s on 2 CPUs), idle leases run dry and
 * end, and a burst spills to the node, which lends another worker.
 */
import type * as amqp from "amqplib";
import { giveBack } from "../scheduling/retry";
import { consumeQueue } from "../transport";
import type { MaybePromise } from "./execute";
import { IdleAfter } from "./idle";
import { WORKER_DEFAULTS } from "./defaults";

/**
 * Deliveries a lease may hold. Tasks that take long go one at a time (Ray's one task in flight per
 * leased worker), so a burst spreads over the node's workers. Short ones, once their moving
 * average (weight `runWeight`) is under `fastAverageMs`, come `fastPrefetch` at a time: they never
 * wait on the broker's turnaround, and a burst's results and acks leave in few writes. An average
 * over `slowAverageMs` takes the lease back to one at a time and gives back what it held; a task
 * that waits longer than `slowTaskMs` suspends the lease. Durable mode has a window of its own
 * (`durableLease`), as each consume, cancel and ack costs a replicated operation there.
 */
const { fastAverageMs, slowAverageMs, runWeight, slowTaskMs } = WORKER_DEFAULTS;

/** How long a lease waits for a delivery before it ends, and what it holds when tasks are short (durable mode has its own). */
export interface LeaseWindow {
  leaseIdleMs: number;
  fastPrefetch: number;
}

export function leaseWindow(durable: boolean): LeaseWindow {
  const { leaseIdleMs, fastPrefetch, durableLease } = WORKER_DEFAULTS;
  return durable ? durableLease : { leaseIdleMs, fastPrefetch };
}

export class Lease {
  private tag?: string;
  private readonly waiting: amqp.ConsumeMessage[] = [];
  private busy = false;
  /** Touched as the lease runs dry: it ends the lease once nothing has run for leaseIdleMs. */
  private readonly idle: IdleAfter;
  private ending = false;
  /** The connection went with the lease's consumer and deliveries: nothing more is consumed, acked or given back. */
  private lost = false;
  /** Its channel closed (with its connection, before the process hears of that). */
  private closed = false;
  /** Reasons not to consume now: the running task waits in get(), or runs long. */
  private suspensions = 0;
  private changes: Promise<void> = Promise.resolve();
  /** The last delivery run and not yet acked, and how many runs that ack will cover. */
  private unacked?: amqp.ConsumeMessage;
  private unackedCount = 0;
  /** The prefetch wanted (1 or fastPrefetch), the consumer's, and the moving average of runs. */
  private prefetch = 1;
  private consuming = 0;
  private averageMs: number;

  constructor(
    private readonly ch: amqp.Channel,
    readonly queue: string,
    private readonly priority: number,
    /** How long the task that started the lease ran: the window starts by it. */
    firstRunMs: number,
    /** Runs a delivery: whether it is still to be acked, at once if the task did not wait. */
    private readonly run: (m: amqp.ConsumeMessage) => MaybePromise<boolean>,
    private readonly returned: () => void,
    private readonly window: LeaseWindow,
  ) {
    ch.on("close", () => (this.closed = true));
    this.idle = new IdleAfter(window.leaseIdleMs, () => this.ending || this.busy || this.waiting.length > 0, () => void this.end());
    this.averageMs = Math.min(firstRunMs, slowAverageMs);
    if (this.averageMs < fastAverageMs) this.prefetch = window.fastPrefetch;
  }

  async start(): Promise<void> {
    await this.settle();
    this.pump();
  }

  /** Stop consuming and give back what waits here, unstarted (the running task waits, or is slow). */
  suspend(): Promise<void> {
    this.suspensions++;
    this.flushAcks(); // what has run is not left to run again should this worker die while it waits
    return this.settle();
  }

  /** One reason fewer; with none left, take the shape's tasks again. */
  resume(): Promise<void> {
    this.suspensions--;
    return this.settle();
  }

  /**
   * Brings the consumer in line with what is wanted now, one change at a time: a suspend that
   * came while a consume was still starting must still cancel it, or the lease would hold tasks
   * its own waiting task needs.
   */
  private settle(): Promise<void> {
    // A change that fails because the channel went with its connection is no error: connectionLost ends the lease.
    this.changes = this.changes.then(() => this.apply(), () => this.apply()).catch((err) => {
      if (!this.lost && !this.closed) throw err;
    });
    return this.changes;
  }

  private async apply(): Promise<void> {
    if (this.lost) return;
    const want = this.suspensions === 0 && !this.ending;
    const prefetch = this.prefetch;
    if (this.tag && (!want || this.consuming !== prefetch)) {
      const tag = this.tag;
      this.tag = undefined;
      await this.ch.cancel(tag).catch(() => undefined);
    }
    // Give back what waits even while ending: a delivery that came just before the cancel took
    // effect may be a child of the task now waiting, which would otherwise wait for it forever.
    // Also when going back to one at a time: what a fast window brought is more than that.
    if (this.suspensions > 0 || (this.consuming > prefetch && !this.tag)) {
      this.flushAcks();
      for (const m of this.waiting.splice(0)) giveBack(this.ch, m);
    }
    if (want && !this.tag) {
      await this.ch.prefetch(prefetch);
      this.consuming = prefetch;
      const tag = (this.tag = (await consumeQueue(this.ch, this.queue, (m) => {
        this.waiting.push(m);
        this.pump();
      }, () => this.cancelled(tag), { priority: this.priority })).consumerTag);
    }
  }

  /** Runs what waits, in arrival order: tasks that do not wait all in this loop. */
  private pump(): void {
    while (!this.busy) {
      if (this.waiting.length === 0 || this.unackedCount >= this.consuming / 2 || this.suspensions > 0) this.flushAcks();
      const m = this.waiting.shift();
      if (!m) {
        if (!this.ending) this.idle.touch();
        return;
      }
      if (m.properties.headers?.actor) {
        this.handBack(m);
        continue;
      }
      const started = performance.now();
      const ack = this.run(m);
      if (!(ack instanceof Promise)) {
        if (this.ran(m, ack, started)) return this.pumpAfterChange();
        continue;
      }
      // A task that waits: if it waits long, what this lease holds goes back for other workers.
      this.busy = true;
      let slow = false;
      const timer = setTimeout(() => {
        slow = true;
        void this.suspend();
      }, slowTaskMs);
      void ack.then((a) => this.ran(m, a, started)).then((changed) => {
        clearTimeout(timer);
        this.busy = false;
        if (slow) void this.resume();
        if (changed) this.pumpAfterChange();
        else this.pump();
      });
      return;
    }
  }

  /** Once a new window is in place (what the old one brought may have gone back), runs what waits. */
  private pumpAfterChange(): void {
    this.busy = true;
    void this.changes.then(() => {
      this.busy = false;
      this.pump();
    });
  }

  /**
   * Counts a run for the ack to come, and sizes the window by how long runs take: their moving
   * average, as one run may look slow only because this process was preempted meanwhile (2 CPUs
   * shared with the broker and the driver). Between the two thresholds the window stays as it is.
   * Returns whether the window changes.
   */
  private ran(m: amqp.ConsumeMessage, ack: boolean, started: number): boolean {
    if (ack) {
      this.unacked = m;
      this.unackedCount++;
    }
    this.averageMs += (performance.now() - started - this.averageMs) * runWeight;
    const prefetch = this.averageMs > slowAverageMs ? 1 : this.averageMs < fastAverageMs ? this.window.fastPrefetch : this.prefetch;
    if (prefetch === this.prefetch) return false;
    this.prefetch = prefetch;
    void this.settle();
    return true;
  }

  /**
   * An actor's creation shares its placement shape's queue, but only a node can place it (the
   * worker it picks becomes the actor): it goes back to the queue, and this lease ends, so its
   * slot is the node's again to take it with. A creation given back before is requeued as such.
   */
  private handBack(m: amqp.ConsumeMessage): void {
    if (this.lost) return;
    this.flushAcks();
    if (m.fields.redelivered) this.ch.nack(m, false, true);
    else giveBack(this.ch, m);
    if (!this.ending) void this.end();
  }

  /**
   * Acks every delivery run so far in one ack. Deliveries run in arrival order, and those acked
   * otherwise (given back, or a long task acked early) are all newer than the last one run, so a
   * `multiple` ack never covers one still to run nor acks one twice.
   */
  private flushAcks(): void {
    if (!this.unacked || this.lost) return;
    this.ch.ack(this.unacked, true);
    this.unacked = undefined;
    this.unackedCount = 0;
  }

  /**
   * The broker cancelled consumer `tag` (its queue was deleted, or a consumer timeout): the lease
   * ends, and its slot is the node's again, whose own consumer declares the queue anew.
   */
  private cancelled(tag: string): void {
    if (this.tag !== tag) return;
    this.tag = undefined;
    if (!this.ending) void this.end();
  }

  /**
   * The connection went, with this lease's consumer and what it held (the broker requeues those,
   * or lost them with a restart, and their owners send them again): the lease ends once its
   * running task is done, and its slot goes back to the node.
   */
  connectionLost(): void {
    this.lost = true;
    this.tag = undefined;
    this.waiting.length = 0;
    this.unacked = undefined;
    if (!this.ending) void this.end();
  }

  /** Stops consuming; once what already arrived has run, gives the slot back. */
  private async end(): Promise<void> {
    this.ending = true;
    await this.settle();
    while (this.busy || this.waiting.length > 0) {
      if (!this.busy) this.pump();
      await new Promise((r) => setImmediate(r));
    }
    this.flushAcks();
    this.returned();
  }
}
