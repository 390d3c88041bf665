/**
 * transport: the broker connection and the names of everything warren declares on it.
 *
 * All names hang under `warren.<cluster>` so clusters on one broker never see each other:
 * - `<p>.tasks`   direct exchange; routing key = a task's resource shape (scheduling/shape.ts),
 *                 one queue per shape `<p>.shape.<key>`, consumed by every node that fits it.
 * - `<p>.control` topic exchange; `node.<id>` reaches one node, `all.<what>` every node.
 * - `<p>.logs`    direct exchange; routing key = job id, bound to that job's driver inbox.
 * - `<p>.inbox.<ownerId>`  one long-lived queue per process that owns objects: results,
 *                 object requests from borrowers, and its job's worker output all land there.
 * - `<p>.node.<id>` a node's control queue; `<p>.mailbox.<Class>.<actorId>` an actor's calls.
 * - `<p>.head`    the head's requests (wire/head.ts), answered to the asker's inbox.
 */
import * as amqp from "amqplib";
import { BrokerAuthError, BrokerUnavailableError, WarrenError } from "../errors";
import { brokerUrls } from "../address";
import type { ActorName } from "../wire/descriptors";
import { tuneFrames } from "./frames";

export const DEFAULT_ADDRESS = "amqp://guest:guest@127.0.0.1:5672";

/** Every default of the transport, each documented here and set nowhere else. */
export const TRANSPORT_DEFAULTS = {
  /**
   * How long a connection attempt may take before the broker counts as unavailable.
   * @default 5000
   */
  connectTimeoutMs: 5000,
  /**
   * The longest a broadcast state query (transport/rpc.ts) waits for the processes the head
   * and the nodes know are alive; it returns as soon as all of them answered.
   * @default 2000
   */
  gatherMs: 2000,
  /**
   * The longest broker outage every process survives, reconnecting (link.ts); past it, the
   * process fails with BrokerLostError. WARREN_BROKER_OUTAGE_S overrides it for a whole cluster.
   * @default 60000
   */
  outageMs: 60_000,
  /**
   * How long a request to the head or a node (rpc.ts) waits for its answer while the connection
   * is up, before it fails naming who did not answer. WARREN_REQUEST_TIMEOUT_S overrides it. The
   * longest answer is kill()'s, given once the actor is dead: within the head's hungMs (15 s)
   * when its node is hung.
   * @default 30000
   */
  requestTimeoutMs: 30_000,
  /**
   * The first wait before reconnecting, doubled on each failed attempt up to `reconnectMaxMs`.
   * @default 100
   */
  reconnectFirstMs: 100,
  /** @default 2000 */
  reconnectMaxMs: 2000,
  /**
   * How long a message the broker returned or nacked while the cluster reconnects waits before
   * it is sent again (link.ts `sendAgainSoon`).
   * @default 500
   */
  sendAgainMs: 500,
  /**
   * How long after a reconnection a request whose target has no queue yet is sent again rather
   * than failed: every process of the cluster reconnects on its own backoff.
   * @default 15000
   */
  settleMs: 15_000,
  /**
   * What a process holds to publish while its connection is down (results, replies), at most;
   * past it the oldest go, and their tasks run again when their owners send them again.
   * @default 67108864 (64 MiB)
   */
  outboxBytes: 64 * 1024 * 1024,
} as const;

/**
 * A duration set in seconds by the environment variable `name` (a number above 0), else
 * `defaultMs`; in milliseconds. A cluster's processes inherit it from whoever starts them.
 */
export function secondsFromEnv(name: string, defaultMs: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return defaultMs;
  const s = Number(raw);
  if (!Number.isFinite(s) || s <= 0) throw new WarrenError(`${name} must be a number of seconds above 0 (got "${raw}")`);
  return s * 1000;
}

/** A count set by the environment variable `name` (a whole number above 0), else `fallback`. */
export function countFromEnv(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) throw new WarrenError(`${name} must be a whole number above 0 (got "${raw}"); unset it for the default, ${fallback}`);
  return n;
}

/**
 * The broker address a process uses: the one given (a URL, or the URLs of one RabbitMQ cluster's
 * nodes as an array), else WARREN_ADDRESS, else the local default. Several URLs travel as one
 * comma-separated string (in configs, environments and messages alike).
 */
export function brokerAddress(address?: string | readonly string[]): string {
  if (Array.isArray(address)) return address.join(",");
  return (address as string | undefined) ?? process.env.WARREN_ADDRESS ?? DEFAULT_ADDRESS;
}

/** What a process is to the broker: the role in its connections' names. */
export type ConnectionRole = "driver" | "worker" | "node" | "head" | "cli" | "sync-rpc" | "lock" | "probe" | "sweep";

/**
 * A connection's name (clientProperties.connection_name, what the management UI lists):
 * `warren <cluster> <role> <id> node=<nodeId> pid=<pid>`, `-` for what the process does not know.
 * AMQP sends it once, when the connection opens: it cannot change later.
 */
export function connectionName(cluster: string, role: ConnectionRole, id: string, nodeId = ""): string {
  return `warren ${cluster || "-"} ${role} ${id || "-"} node=${nodeId || "-"} pid=${process.pid}`;
}

/**
 * Connects to the first broker of `address` that answers, in turn, with Nagle off (45 round
 * trips/s with it on, thousands without: docs/architecture.md). Refused credentials are a
 * BrokerAuthError; no broker answering, a BrokerUnavailableError naming them all.
 */
export async function connectBroker(address: string, name: string): Promise<amqp.ChannelModel> {
  return (await connectBrokerAt(address, name)).conn;
}

/** connectBroker, also saying which URL of the address it connected to. */
export async function connectBrokerAt(address: string, name: string): Promise<{ conn: amqp.ChannelModel; url: string }> {
  let lastError: unknown;
  for (const url of brokerUrls(address)) {
    let conn: amqp.ChannelModel;
    try {
      conn = await amqp.connect(url, {
        noDelay: true,
        timeout: TRANSPORT_DEFAULTS.connectTimeoutMs,
        clientProperties: { connection_name: name },
      });
    } catch (err) {
      if (/ACCESS.REFUSED/.test((err as Error).message)) throw new BrokerAuthError(url, err);
      lastError = err;
      continue;
    }
    // A broker that goes away surfaces through the channels' close handlers; without a listener
    // here an 'error' event would crash the process instead.
    conn.on("error", () => undefined);
    tuneFrames(conn);
    return { conn, url };
  }
  throw new BrokerUnavailableError(address, lastError);
}

/**
 * A long-lived channel that closes while its process still needs it (a 406 from a stray ack, the
 * broker going away) would leave that process deaf without a word. `onLost` hears of it with the
 * broker's reason, so the process can fail loudly instead; it is called for closes the process
 * asked for too, so it checks whether it is stopping.
 */
export function watchChannel(ch: amqp.Channel, onLost: (reason: Error) => void): void {
  let reason = new Error("the broker closed the channel");
  ch.on("error", (err: Error) => (reason = err));
  ch.on("close", () => onLost(reason));
}

/**
 * Declares a queue that more than one process uses (a shape's queue, an actor's mailbox). It is
 * durable: RabbitMQ 4.3 rejects a queue that is neither durable nor exclusive (the deprecated
 * transient_nonexcl_queues, closing the connection with 541), and such a queue outlives a broker
 * restart. Its messages stay transient, so a durable classic queue costs nothing per message.
 * In durable mode (`quorum`) it is a quorum queue, replicated over a RabbitMQ cluster's nodes,
 * and its messages are persistent. Exclusive queues (inboxes, node queues, the head's) die with
 * their connection and need not be either.
 */
export function declareSharedQueue(ch: amqp.Channel, queue: string, quorum = false): Promise<amqp.Replies.AssertQueue> {
  return ch.assertQueue(queue, { durable: true, autoDelete: false, ...(quorum && { arguments: { "x-queue-type": "quorum" } }) });
}

/**
 * Consumes `queue`. A consumer the broker cancels (basic.cancel: its queue was deleted, or on
 * RabbitMQ 4.3 a delivery outlived the consumer timeout) hears nothing more, and amqplib only
 * hands it a null message: `onCancel` runs then, to consume again or to end, so that no process
 * is left deaf without a word.
 */
export function consumeQueue(
  ch: amqp.Channel,
  queue: string,
  onMessage: (m: amqp.ConsumeMessage) => void,
  onCancel: () => void,
  options?: amqp.Options.Consume,
): Promise<amqp.Replies.Consume> {
  return ch.consume(queue, (m) => (m ? onMessage(m) : onCancel()), options);
}

/**
 * Subscribes again after the broker cancelled a consumer (consumeQueue), saying so on stderr;
 * `lost` hears if that fails (the process then fails as for a lost channel).
 */
export function resubscribe(what: string, subscribe: () => Promise<unknown>, lost: (reason: Error) => void): void {
  console.error(`warren ${process.pid}: the broker cancelled the consumer of ${what} (its queue was deleted, or a consumer timeout); consuming again`);
  subscribe().catch((err: Error) => lost(new Error(`could not consume ${what} again: ${err.message}`, { cause: err })));
}

export class Topology {
  readonly prefix: string;
  /**
   * Durable mode (init({ durable: true }), `warren start --head --durable`): shared queues are
   * quorum queues and task messages persistent, published with confirms. A process that joins a
   * cluster learns it from the head before it declares a shared queue.
   */
  constructor(readonly cluster: string, public durable = false) {
    this.prefix = `warren.${cluster}`;
  }
  get tasks() { return `${this.prefix}.tasks`; }
  get control() { return `${this.prefix}.control`; }
  get logs() { return `${this.prefix}.logs`; }
  shapeQueue(shape: string) { return `${this.prefix}.shape.${shape}`; }
  inbox(ownerId: string) { return `${this.prefix}.inbox.${ownerId}`; }
  nodeQueue(nodeId: string) { return `${this.prefix}.node.${nodeId}`; }
  /**
   * An actor's mailbox, named by its class too so that the management UI shows whose it is. The
   * class is cut to 64 characters, dots and spaces made `_`: the id after the last dot is the key.
   */
  mailbox(actor: ActorName) {
    return `${this.prefix}.mailbox.${(actor.className || "anonymous").replace(/[.\s]/g, "_").slice(0, 64)}.${actor.id}`;
  }
  /** The actor id of a mailbox's name (a routing key on the default exchange), else undefined. */
  mailboxActor(queue: string): string | undefined {
    return queue.startsWith(`${this.prefix}.mailbox.`) ? queue.slice(queue.lastIndexOf(".") + 1) : undefined;
  }
  get head() { return `${this.prefix}.head`; }

  /** A shape's queue, bound to the tasks exchange by its key; idempotent. */
  async declareShape(ch: amqp.Channel, shape: string): Promise<void> {
    const q = this.shapeQueue(shape);
    await declareSharedQueue(ch, q, this.durable);
    await ch.bindQueue(q, this.tasks, shape);
  }

  /** An actor's mailbox; idempotent. */
  declareMailbox(ch: amqp.Channel, actor: ActorName): Promise<amqp.Replies.AssertQueue> {
    return declareSharedQueue(ch, this.mailbox(actor), this.durable);
  }

  /** Exchanges every process may publish to; idempotent. */
  async declare(ch: amqp.Channel): Promise<void> {
    await ch.assertExchange(this.tasks, "direct", { durable: false, autoDelete: false });
    await ch.assertExchange(this.control, "topic", { durable: false, autoDelete: false });
    await ch.assertExchange(this.logs, "direct", { durable: false, autoDelete: false });
  }

  /** Removes the exchanges (queues are removed by whoever knows them). */
  async remove(ch: amqp.Channel): Promise<void> {
    for (const ex of [this.tasks, this.control, this.logs]) await ch.deleteExchange(ex);
  }
}
