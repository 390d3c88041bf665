/**
 * worker: a channel that actor mailboxes are consumed on, and its acks. An actor with a process of
 * its own has one; the shared actors of a host process spread over `sharedMailboxChannels` of
 * them (MailboxChannels below): a connection allows at most 2,047 channels, and each costs the
 * broker a process of its own, so a host of a thousand actors cannot give each its own.
 *
 * Acks (settle) are one `multiple` ack up to the oldest call still running, and single acks for
 * calls finished after it. A channel's delivery tags run 1, 2, 3... over every mailbox consumed
 * on it: `lowest` is the oldest not yet acked, `ackedAbove` those acked singly above it.
 */
import type * as amqp from "amqplib";
import type { Runtime } from "../core/runtime";
import { WORKER_DEFAULTS } from "./defaults";

const { actorAckDelayMs, sharedMailboxChannels, sharedPrefetch } = WORKER_DEFAULTS;

export class MailboxChannel {
  ch!: amqp.Channel;
  /** Counts the channels opened: a call's ack belongs to the channel it came on, gone with a lost connection. */
  epoch = 0;
  /** The channel of the current connection, once open. */
  ready: Promise<void>;
  private readonly finished = new Map<number, amqp.ConsumeMessage>();
  private readonly ackedAbove = new Set<number>();
  private lowest = 1;
  private ackTimer?: NodeJS.Timeout;
  private closing = false;

  /** `prefetch`: the calls each mailbox consumed on it may have delivered and unacked. */
  constructor(private readonly rt: Runtime, readonly prefetch: number) {
    this.ready = this.open();
  }

  /** Opens the channel (anew, after an outage). */
  open(): Promise<void> {
    return (this.ready = (async () => {
      const ch = await this.rt.conn.createChannel();
      this.rt.link.watch(ch, (err) => this.closing || this.rt.channelLost(err), "the mailbox");
      // Calls already delivered count as sent to this incarnation (Ray's rule too), so a deeper
      // prefetch only trades how many fail on a crash for fewer round trips under load.
      await ch.prefetch(this.prefetch);
      this.ch = ch;
    })());
  }

  /** The connection is gone, and the channel with it: the tags to ack died too (the broker requeued those calls, or lost them). */
  down(): void {
    this.ch = this.rt.link.outbox.channel;
    this.epoch++;
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    this.finished.clear();
    this.ackedAbove.clear();
    this.lowest = 1;
  }

  /**
   * A call is done with: acked at the end of the tick (`soon`: the actor's calls may run again),
   * or up to actorAckDelayMs later and half a window at a time, so a stream of calls costs the
   * broker few acks. A call of a channel lost since (an older epoch) has nothing to ack.
   */
  settle(msg: amqp.ConsumeMessage, epoch: number, soon: boolean): void {
    if (epoch !== this.epoch) return;
    this.finished.set(msg.fields.deliveryTag, msg);
    if (soon) {
      if (this.finished.size === 1) process.nextTick(() => this.flush());
    } else if (this.finished.size >= this.prefetch / 2) this.flush();
    else this.ackTimer ??= setTimeout(() => this.flush(), actorAckDelayMs);
  }

  /** Calls given back unstarted (an actor stopped in a shared host): the broker delivers them again, to the next incarnation. */
  giveBack(calls: { msg: amqp.ConsumeMessage; epoch: number }[]): void {
    for (const { msg, epoch } of calls) {
      if (epoch !== this.epoch) continue;
      this.ch.nack(msg, false, true);
      this.ackedAbove.add(msg.fields.deliveryTag);
    }
  }

  flush(): void {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    let upTo: amqp.ConsumeMessage | undefined;
    for (;;) {
      const m = this.finished.get(this.lowest);
      if (m) {
        upTo = m;
        this.finished.delete(this.lowest);
      } else if (!this.ackedAbove.delete(this.lowest)) break;
      this.lowest++;
    }
    if (upTo) this.ch.ack(upTo, true);
    for (const [tag, m] of this.finished) {
      this.ch.ack(m);
      this.ackedAbove.add(tag);
    }
    this.finished.clear();
  }

  /** The actor's process exits (exitActor()): what it answered is acked first. */
  async close(): Promise<void> {
    this.flush();
    this.closing = true;
    await this.ch.close();
  }
}

/**
 * A process's mailbox channels: an own actor's one, or a host's shared ones, each shared actor
 * given the next in turn. Its owner (worker/main.ts) reopens them all after an outage, before any
 * mailbox is consumed again.
 */
export class MailboxChannels {
  private readonly all: MailboxChannel[] = [];
  private next = 0;

  constructor(private readonly rt: Runtime) {}

  /** A channel of its own, for an actor with a process of its own (room for the calls it may run at once). */
  own(maxConcurrency: number): MailboxChannel {
    const c = new MailboxChannel(this.rt, Math.min(Math.max(maxConcurrency, 100), 1000));
    this.all.push(c);
    return c;
  }

  /** The next of the shared channels, opened as actors come (a host has only these). */
  shared(): MailboxChannel {
    if (this.all.length < sharedMailboxChannels) this.all.push(new MailboxChannel(this.rt, sharedPrefetch));
    return this.all[this.next++ % this.all.length];
  }

  down(): void {
    for (const c of this.all) c.down();
  }

  async restore(): Promise<void> {
    await Promise.all(this.all.map((c) => c.open()));
  }
}
