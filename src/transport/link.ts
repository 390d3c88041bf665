/**
 * transport: a process's broker connection, kept across broker restarts, crashes and failovers.
 *
 * When the connection goes, every channel goes with it. The process hears `down`, points its
 * channel fields at the link's outbox (publishes wait there, acks of deliveries from the dead
 * channels are dropped: the broker has already requeued those, or lost them with a restart), and
 * the link reconnects with backoff. On each connection `restore` runs: the process makes its
 * channels, declares what it declares and consumes again, and sends again what it keeps records
 * of (tasks, requests); then the outbox goes out. Past the outage limit, `lost` hears a
 * BrokerLostError naming the broker and how long it was gone.
 *
 * Why not amqplib 2.3's `recovery` option: it reopens one URL, and a RabbitMQ cluster's failover
 * needs the next node's. amqp-connection-manager rotates URLs, but wraps each channel in a
 * ChannelWrapper of its own that buffers every publish, on the hot path, and that the fast paths
 * of frames.ts cannot reach into. This is the same loop (backoff with jitter, a setup on every
 * connection) over connectBroker, which tries each URL in turn.
 *
 * Invariant: nothing here runs per message while the connection is up.
 */
import type * as amqp from "amqplib";
import { BrokerLostError, BrokerUnavailableError, WarrenError } from "../errors";
import { brokerUrls, redactAddress } from "../address";
import { TRANSPORT_DEFAULTS, connectBrokerAt, secondsFromEnv, watchChannel } from "./index";

export interface LinkHooks {
  /**
   * Runs on every connection, the first one included (`again` false): makes the process's
   * channels, declares and consumes, sends again what it keeps. Returns the channel the outbox
   * is published on. If it throws, the connection is dropped and tried again.
   */
  restore(link: BrokerLink, again: boolean): Promise<amqp.Channel>;
  /** The connection went away: the process's channels are dead; publish to `link.outbox` meanwhile. */
  down(reason: Error): void;
  /** The broker stayed away longer than the outage limit. */
  lost(error: BrokerLostError): void;
}

/** The longest outage a process survives: WARREN_BROKER_OUTAGE_S, else TRANSPORT_DEFAULTS.outageMs. */
export function outageLimitMs(env: NodeJS.ProcessEnv = process.env): number {
  return secondsFromEnv("WARREN_BROKER_OUTAGE_S", TRANSPORT_DEFAULTS.outageMs, env);
}

export class BrokerLink {
  /** The current connection (a dead one while down: its channels throw). */
  conn!: amqp.ChannelModel;
  /** The URL of the address the connection went to (a list's first that answered). */
  private url = "";
  /** Stands in for every channel of the process while the connection is down. */
  readonly outbox = new Outbox();
  private connected = false;
  private closing = false;
  private waiting: (() => void)[] = [];
  /** How many times this link has connected again, and when it last did (Date.now()). */
  reconnections = 0;
  private reconnectedAt = 0;

  private constructor(
    readonly address: string,
    private readonly name: string,
    private readonly hooks: LinkHooks,
    private readonly limitMs: number,
  ) {}

  /** Connects (a first failure throws as connectBroker does) and runs `restore` for the first time. */
  static async open(address: string, name: string, hooks: LinkHooks): Promise<BrokerLink> {
    const link = new BrokerLink(address, name, hooks, outageLimitMs());
    await link.connect(false);
    return link;
  }

  /** Whether the connection is up (and restored). */
  get up(): boolean {
    return this.connected;
  }

  /**
   * Whether the connection is down, or came back less than `settleMs` ago: the other processes of
   * the cluster may not be back yet, so a request to one of them that finds no queue is sent again.
   */
  settling(): boolean {
    return !this.connected || (this.reconnections > 0 && Date.now() - this.reconnectedAt < TRANSPORT_DEFAULTS.settleMs);
  }

  /** Resolves once the connection is up. */
  whenUp(): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /**
   * A channel of the current connection that closes while the connection stays (a 406 from a
   * stray ack) would leave its process deaf: `onLost` hears of it, as "the `what` channel
   * closed (the broker's reason)". Channels closing with their connection are the link's to restore.
   */
  watch(ch: amqp.Channel, onLost: (error: Error) => void, what = "a broker"): void {
    const conn = this.conn;
    const current = () => this.connected && !this.closing && this.conn === conn;
    // A lost connection closes its channels before it says so itself, and on a loaded machine it may
    // say so much later: only a connection that can still open a channel has lost just this one.
    watchChannel(ch, (reason) => setImmediate(async () => {
      if (current() && (await opensChannel(conn)) && current()) onLost(new Error(`${what} channel closed (${reason.message})`, { cause: reason }));
    }));
  }

  private async connect(again: boolean): Promise<void> {
    const { conn, url } = await connectBrokerAt(this.address, this.name);
    let gone: Error | undefined;
    conn.on("error", (err: Error) => (gone = err));
    conn.on("close", (err?: Error) => {
      gone ??= err ?? new Error("the connection closed");
      if (this.conn === conn && this.connected) this.onDown(gone);
    });
    this.conn = conn;
    this.url = url;
    let ch: amqp.Channel;
    try {
      ch = await this.hooks.restore(this, again);
      if (gone) throw gone;
    } catch (err) {
      await conn.close().catch(() => undefined);
      throw err;
    }
    this.connected = true;
    try {
      this.outbox.flush(ch);
    } catch {
      // Closed again already: what is left waits for the next connection's flush.
    }
    for (const w of this.waiting.splice(0)) w();
  }

  private onDown(reason: Error): void {
    if (this.closing) return;
    this.connected = false;
    this.hooks.down(reason);
    const others = brokerUrls(this.address).length > 1 ? ` to ${redactAddress(this.address)}` : "";
    console.error(`warren ${process.pid}: lost the broker at ${redactAddress(this.url)} (${reason.message}); reconnecting${others} for up to ${this.limitMs / 1000} s`);
    void this.reconnect(Date.now());
  }

  private async reconnect(since: number): Promise<void> {
    const { reconnectFirstMs, reconnectMaxMs } = TRANSPORT_DEFAULTS;
    let last: unknown;
    for (let attempt = 0; !this.closing; attempt++) {
      // Exponential, capped, with 20% jitter so a cluster's processes do not all knock at once.
      const base = Math.min(reconnectMaxMs, reconnectFirstMs * 2 ** attempt);
      await new Promise((r) => setTimeout(r, base * (0.8 + 0.4 * Math.random())));
      if (this.closing) return;
      const gone = Date.now() - since;
      if (gone > this.limitMs) return this.hooks.lost(new BrokerLostError(this.address, gone, this.limitMs, last));
      try {
        await this.connect(true);
        this.reconnections++;
        this.reconnectedAt = Date.now();
        console.error(`warren ${process.pid}: reconnected to the broker at ${redactAddress(this.url)} after ${((Date.now() - since) / 1000).toFixed(1)} s`);
        return;
      } catch (err) {
        last = err instanceof BrokerUnavailableError ? err.cause : err; // what the socket said, not the advice to start one
      }
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.conn.close().catch(() => undefined);
  }
}

/** Whether `conn` can open (and close) a channel within a few seconds: a connection that cannot is gone, or going. */
function opensChannel(conn: amqp.ChannelModel): Promise<boolean> {
  const opened = conn.createChannel().then((c) => {
    void c.close().catch(() => undefined);
    return true;
  }, () => false);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), TRANSPORT_DEFAULTS.connectTimeoutMs)));
  return Promise.race([opened, late]).finally(() => clearTimeout(timer));
}

/**
 * Sends something again a little later: a message the broker returned (its target's queue not
 * declared again yet, while the cluster reconnects) or nacked.
 */
export function sendAgainSoon(send: () => void): void {
  setTimeout(send, TRANSPORT_DEFAULTS.sendAgainMs);
}

/** Whether a channel is a link's outbox (the connection is down). */
export function isOutbox(ch: unknown): boolean {
  return ch instanceof Outbox;
}

interface Held {
  exchange: string;
  key: string;
  content: Buffer;
  options?: amqp.Options.Publish;
}

/**
 * What a process's channel fields point at while the connection is down. Publishes are held, in
 * order, and published when the connection is back (bounded: past `outboxBytes` the oldest are
 * dropped, which owners make up for by sending their tasks again). Acks are dropped: they were
 * for deliveries of channels that are gone. Anything else fails; the process restores it.
 */
export class Outbox {
  private held: Held[] = [];
  private bytes = 0;
  dropped = 0;

  publish(exchange: string, key: string, content: Buffer, options?: amqp.Options.Publish): boolean {
    this.held.push({ exchange, key, content, options });
    this.bytes += content.length;
    while (this.bytes > TRANSPORT_DEFAULTS.outboxBytes && this.held.length > 1) {
      this.bytes -= this.held.shift()!.content.length;
      this.dropped++;
    }
    return true;
  }

  ack(): void {}
  nack(): void {}
  ackAll(): void {}
  on(): this { return this; }

  /** Every other channel operation: the connection is down. */
  private down(): Promise<never> {
    return Promise.reject(new WarrenError("the broker connection is down (reconnecting)"));
  }
  assertQueue() { return this.down(); }
  checkQueue() { return this.down(); }
  deleteQueue() { return this.down(); }
  bindQueue() { return this.down(); }
  assertExchange() { return this.down(); }
  consume() { return this.down(); }
  cancel() { return this.down(); }
  prefetch() { return this.down(); }
  close(): Promise<void> { return Promise.resolve(); }

  /** This outbox as the channel it stands in for. */
  get channel(): amqp.Channel {
    return this as unknown as amqp.Channel;
  }

  flush(ch: amqp.Channel): void {
    const held = this.held;
    this.held = [];
    this.bytes = 0;
    for (const m of held) ch.publish(m.exchange, m.key, m.content, m.options);
  }
}
