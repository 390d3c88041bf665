/**
 * A node's consumer of one shape queue, which it can pause (cancel) while it cannot start that
 * shape and a peer can, and resume (consume again) when it has room. Deliveries already received
 * stay this node's to ack either way. Prefetch is set per consumer by the qos sent just before its
 * consume, so every qos+consume pair on the channel runs in one queue of operations.
 */
import type * as amqp from "amqplib";
import type { Demand } from "../scheduling/shape";

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
  private tag?: string;
  private wanted = true;

  constructor(
    private readonly ops: ChannelOps,
    readonly queue: string,
    /** The shape's demand, compiled. */
    readonly units: Demand,
    private readonly onMessage: (m: amqp.ConsumeMessage) => void,
  ) {}

  get active(): boolean {
    return this.wanted;
  }

  /** Consumes again, at most `prefetch` deliveries unacked (as many as the node has free slots). */
  resume(prefetch: number): Promise<void> {
    this.wanted = true;
    return this.ops.run(async () => {
      if (!this.wanted || this.tag) return;
      await this.ops.ch.prefetch(prefetch);
      this.tag = (await this.ops.ch.consume(this.queue, (m) => m && this.onMessage(m))).consumerTag;
    });
  }

  pause(): Promise<void> {
    this.wanted = false;
    return this.ops.run(async () => {
      if (this.wanted || !this.tag) return;
      const tag = this.tag;
      this.tag = undefined;
      await this.ops.ch.cancel(tag);
    });
  }
}
