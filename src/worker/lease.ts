/**
 * A lease (Ray's worker lease): the node has lent this worker one slot of a shape (the resources
 * and GPUs stay reserved for it), so the worker takes that shape's tasks from the broker itself
 * and acks them itself, with no IPC through the node per task. After LEASE_IDLE_MS without a
 * delivery it stops consuming, runs what had already arrived, and gives the slot back. While its
 * task waits in get() it takes nothing (the task it waits for could be the one it would hold).
 */
import type * as amqp from "amqplib";

const LEASE_IDLE_MS = 10;
/** One running, one waiting: hides the broker's turnaround without hoarding a burst. */
const LEASE_PREFETCH = 2;

export class Lease {
  private tag?: string;
  private readonly waiting: amqp.ConsumeMessage[] = [];
  private busy = false;
  private idleTimer?: NodeJS.Timeout;
  private ending = false;
  private suspended = false;

  constructor(
    private readonly ch: amqp.Channel,
    readonly queue: string,
    private readonly run: (m: amqp.ConsumeMessage) => Promise<void>,
    private readonly returned: () => void,
  ) {}

  async start(): Promise<void> {
    await this.consume();
    this.pump();
  }

  private async consume(): Promise<void> {
    await this.ch.prefetch(LEASE_PREFETCH);
    this.tag = (await this.ch.consume(this.queue, (m) => {
      if (!m) return;
      this.waiting.push(m);
      this.pump();
    })).consumerTag;
  }

  /** The running task waits in get(): stop consuming and give back what waits here, unstarted. */
  async suspend(): Promise<void> {
    if (this.suspended || this.ending) return;
    this.suspended = true;
    if (this.tag) await this.ch.cancel(this.tag).catch(() => undefined);
    this.tag = undefined;
    for (const m of this.waiting.splice(0)) {
      const p = m.properties;
      this.ch.publish(m.fields.exchange, m.fields.routingKey, m.content, { messageId: p.messageId, type: p.type, headers: p.headers });
      this.ch.ack(m);
    }
  }

  /** The task goes on: take the shape's tasks again. */
  async resume(): Promise<void> {
    if (!this.suspended || this.ending) return;
    this.suspended = false;
    await this.consume();
  }

  private pump(): void {
    clearTimeout(this.idleTimer);
    if (this.busy) return;
    const m = this.waiting.shift();
    if (!m) {
      if (!this.ending) this.idleTimer = setTimeout(() => void this.end(), LEASE_IDLE_MS);
      return;
    }
    this.busy = true;
    void this.run(m).finally(() => {
      this.busy = false;
      this.pump();
    });
  }

  /** Stops consuming; once what already arrived has run, gives the slot back. */
  private async end(): Promise<void> {
    this.ending = true;
    if (this.tag) await this.ch.cancel(this.tag).catch(() => undefined);
    this.tag = undefined;
    while (this.busy || this.waiting.length > 0) {
      if (!this.busy) this.pump();
      await new Promise((r) => setImmediate(r));
    }
    this.returned();
  }
}
