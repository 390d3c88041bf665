/**
 * A node's consumer of one shape queue, which it can pause (cancel) while it cannot start that
 * shape and a peer can, and resume (consume again) when it has room. Deliveries already received
 * stay this node's to ack either way. Prefetch is set per consumer by the qos sent just before its
 * consume, so every qos+consume pair on the channel runs in one queue of operations.
 */
import type * as amqp from "amqplib";
import type { Demand } from "../scheduling/shape";
import { consumeQueue, resubscribe } from "../transport";
import { isOutbox } from "../transport/link";

/**
 * The queue of consumer operations on the node's task channel. The daemon sets `ch` on each
 * connection; while the connection is down it is the link's outbox, whose operations fail, and
 * an operation that fails then is dropped: the consumers are restored with the next connection.
 */
export class ChannelOps {
  private last: Promise<unknown> = Promise.resolve();
  private current!: amqp.Channel;
  /** Whether `current` is open: operations that fail on a channel closing with its connection are dropped. */
  private open = false;

  /** The channel, if known now (the daemon sets it with each connection). */
  constructor(ch?: amqp.Channel) {
    if (ch) this.ch = ch;
  }

  get ch(): amqp.Channel {
    return this.current;
  }

  set ch(c: amqp.Channel) {
    this.current = c;
    this.open = !isOutbox(c);
    c.on("close", () => { if (this.current === c) this.open = false; });
  }

  run(op: () => Promise<void>): Promise<void> {
    const ch = this.current;
    const guarded = () => op().catch((err) => {
      if (this.current === ch && this.open) throw err;
    });
    const next = this.last.then(guarded, guarded);
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

  /** The connection went: the consumer went with it (what it delivered is dropped by the scheduler). */
  connectionLost(): void {
    this.current = undefined;
  }

  /** A new connection: the queue declared and bound again (a restarted broker may have lost the binding), consumed again if wanted. */
  async restore(): Promise<void> {
    await this.ops.run(() => this.recovery.declare());
    if (this.wanted) await this.consume(this.prefetch);
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
