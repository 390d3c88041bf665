/**
 * A lease (Ray's worker lease): the node has lent this worker one slot of a shape (the resources
 * and GPUs stay reserved for it), so the worker takes that shape's tasks from the broker itself
 * and acks them itself, with no IPC through the node per task. It acks in batches (one ack with
 * `multiple` for every task run since the last), so the broker refills its prefetch in bursts and
 * a burst's results and ack leave in one write: on these machines a socket write is tens of µs.
 * After LEASE_IDLE_MS without a delivery it stops consuming, runs what had already arrived, and
 * gives the slot back. While its task waits in get() it takes nothing (the task it waits for
 * could be the one it would hold).
 */
import type * as amqp from "amqplib";
import { publishAgain } from "../scheduling/retry";

const LEASE_IDLE_MS = 10;
/**
 * Deliveries a lease may hold: enough that short tasks never wait on the broker's turnaround, and
 * that a burst's results and acks leave in few writes (pipelined tasks: 8 -> 11,800/s, 16 -> 14,200,
 * 32 -> 16,300, 64 -> 18,200 here). A task running longer than SLOW_TASK_MS suspends the lease
 * (what waits goes back to the queue for other workers and nodes), so slow tasks hoard nothing;
 * short ones may keep up to LEASE_PREFETCH x SLOW_TASK_MS of work from an idle peer.
 */
const LEASE_PREFETCH = 32;
const SLOW_TASK_MS = 20;
/** Tasks run before their ack is sent even though more wait: half the prefetch keeps the broker sending. */
const ACK_BATCH = LEASE_PREFETCH / 2;

export class Lease {
  private tag?: string;
  private readonly waiting: amqp.ConsumeMessage[] = [];
  private busy = false;
  private idleTimer?: NodeJS.Timeout;
  private ending = false;
  /** Reasons not to consume now: the running task waits in get(), or runs long. */
  private suspensions = 0;
  private changes: Promise<void> = Promise.resolve();
  /** The last delivery run and not yet acked, and how many runs that ack will cover. */
  private unacked?: amqp.ConsumeMessage;
  private unackedCount = 0;

  constructor(
    private readonly ch: amqp.Channel,
    readonly queue: string,
    /** Runs a delivery; resolves to whether it is still to be acked. */
    private readonly run: (m: amqp.ConsumeMessage) => Promise<boolean>,
    private readonly returned: () => void,
  ) {}

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
    this.changes = this.changes.then(() => this.apply(), () => this.apply());
    return this.changes;
  }

  private async apply(): Promise<void> {
    const want = this.suspensions === 0 && !this.ending;
    if (want && !this.tag) {
      await this.ch.prefetch(LEASE_PREFETCH);
      this.tag = (await this.ch.consume(this.queue, (m) => {
        if (!m) return;
        this.waiting.push(m);
        this.pump();
      })).consumerTag;
    } else if (!want && this.tag) {
      const tag = this.tag;
      this.tag = undefined;
      await this.ch.cancel(tag).catch(() => undefined);
    }
    // Give back what waits even while ending: a delivery that came just before the cancel took
    // effect may be a child of the task now waiting, which would otherwise wait for it forever.
    if (this.suspensions > 0) {
      for (const m of this.waiting.splice(0)) {
        publishAgain(this.ch, m);
        this.ch.ack(m);
      }
    }
  }

  private pump(): void {
    clearTimeout(this.idleTimer);
    if (this.busy) return;
    if (this.waiting.length === 0 || this.unackedCount >= ACK_BATCH || this.suspensions > 0) this.flushAcks();
    const m = this.waiting.shift();
    if (!m) {
      if (!this.ending) this.idleTimer = setTimeout(() => void this.end(), LEASE_IDLE_MS);
      return;
    }
    this.busy = true;
    let slow = false;
    const timer = setTimeout(() => {
      slow = true;
      void this.suspend();
    }, SLOW_TASK_MS);
    void this.run(m).then((ack) => {
      if (!ack) return;
      this.unacked = m;
      this.unackedCount++;
    }).finally(() => {
      clearTimeout(timer);
      this.busy = false;
      if (slow) void this.resume();
      this.pump();
    });
  }

  /**
   * Acks every delivery run so far in one ack. Deliveries run in arrival order, and those acked
   * otherwise (given back, or a long task acked early) are all newer than the last one run, so a
   * `multiple` ack never covers one still to run nor acks one twice.
   */
  private flushAcks(): void {
    if (!this.unacked) return;
    this.ch.ack(this.unacked, true);
    this.unacked = undefined;
    this.unackedCount = 0;
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
