/**
 * A node's consumer of one shape queue, which it can pause (cancel) while it cannot start that
 * shape and a peer can, and resume (consume again) when it has room. Deliveries already received
 * stay this node's to ack either way. Prefetch is set per consumer by the qos sent just before its
 * consume, so every qos+consume pair on the channel runs in one queue of operations.
 */
import type * as amqp from "amqplib";
import type { Demand } from "../scheduling/shape";
import { consumeQueue, resubscribe } from "../transport";

export class ChannelOps {
  private last: Promise<unknown> = Promise.resolve();
  constructor(readonly ch: amqp.Channel) {}

  run<T>(op: () => Promise<T>): Promise<T> {
    const next = this.last.then(op, op);
    this.last = next.catch(() => undefined);
    return next;
  }
}

export class ShapeConsumer {
  private current?: string;
  private wanted = true;
  /** The prefetch of the current consumer, or of the one being started. */
  private prefetch = 0;
  /** A consume is on its way: its window is still whole. */
  private starting = false;

  constructor(
    private readonly ops: ChannelOps,
    readonly queue: string,
    /** The shape's demand, compiled. */
    readonly units: Demand,
    private readonly onMessage: (m: amqp.ConsumeMessage) => void,
    /** Declares the queue again (after the broker cancelled this consumer because it was deleted), or reports that it cannot. */
    private readonly recovery: { declare(): Promise<void>; lost(reason: Error): void },
  ) {}

  get active(): boolean {
    return this.wanted;
  }

  /**
   * How many more deliveries the broker may send now. Prefetch counts the consumer's unacked
   * deliveries, tasks still running among them, so `unacked` counts those carrying its tag.
   */
  room(unacked: (consumerTag: string) => number): number {
    if (!this.wanted) return 0;
    return this.starting || !this.current ? this.prefetch : this.prefetch - unacked(this.current);
  }

  /**
   * Consumes with a whole window of `prefetch` deliveries (as many as the node has free slots),
   * replacing the current consumer if there is one: what that one delivered stays this node's to ack.
   */
  consume(prefetch: number): Promise<void> {
    this.wanted = true;
    this.prefetch = prefetch;
    this.starting = true;
    return this.ops.run(async () => {
      try {
        if (!this.wanted) return;
        if (this.current) await this.ops.ch.cancel(this.current);
        this.current = undefined;
        await this.ops.ch.prefetch(this.prefetch);
        const tag = (this.current = (await consumeQueue(this.ops.ch, this.queue, this.onMessage, () => this.cancelled(tag))).consumerTag);
      } finally {
        this.starting = false;
      }
    });
  }

  /**
   * The broker cancelled consumer `tag`: if it is the current one and still wanted, declare the
   * queue again (it may have been deleted) and consume with the same window.
   */
  private cancelled(tag: string): void {
    if (tag !== this.current) return;
    this.current = undefined;
    if (!this.wanted) return;
    resubscribe(`shape queue ${this.queue}`, async () => {
      await this.recovery.declare();
      await this.consume(this.prefetch);
    }, this.recovery.lost);
  }

  pause(): Promise<void> {
    this.wanted = false;
    return this.ops.run(async () => {
      if (this.wanted || !this.current) return;
      const tag = this.current;
      this.current = undefined;
      await this.ops.ch.cancel(tag);
    });
  }
}
