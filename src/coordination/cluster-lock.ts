/**
 * ClusterLock: mutual exclusion across the nodes of a cluster, through the broker, released
 * when its holder's connection dies.
 *
 * - The mutex is an exclusive queue `warren.<cluster>.lock.<name>`: the broker lets one
 *   connection declare it; another connection's declare fails with 405 RESOURCE_LOCKED (which
 *   closes that channel, so every attempt uses a throwaway channel), and the broker deletes it
 *   within milliseconds of the holder's connection dying (a hung but connected holder only after
 *   missed heartbeats). Exclusivity is per connection, not per channel, so the lock objects of
 *   one process that share a connection also exclude each other here (`localHolds`).
 * - Waiting: a waiter binds an exclusive auto-delete queue to the topic exchange
 *   `warren.<cluster>.locks` with the lock's name as its key, then tries again. The holder, on
 *   release, deletes the lock's queue and only then publishes a notice with that key, so a
 *   waiter bound before the notice hears it, and one bound after it finds the queue gone: no
 *   wake-up is lost. A holder that crashed sends no notice, so waiters also try every
 *   RETRY_MS. The exchange is auto-delete: it disappears with the last waiter. A release with
 *   no waiter publishes to a missing exchange, which closes that (throwaway) channel and is
 *   otherwise harmless.
 * - The connection: the running warren runtime's (`currentRuntime()`), or, with `{ cluster }`
 *   (and `address`) in the options, one the lock opens on acquire() and closes on release().
 *   That connection keeps the process alive while the lock is held (amqplib's socket and
 *   heartbeat timers are ref'd; heartbeats are what free a lock whose node vanished from the
 *   network, so we keep them), unlike a FileLock: release it, or exit (which releases it).
 */
import type * as amqp from "amqplib";
import { currentRuntime } from "../core/current";
import { OptionsError, WarrenError, type FieldProblem } from "../errors";
import { brokerAddress, connectBroker, connectionName } from "../transport";
import { LockTimeoutError, checkAcquirable } from "./errors";
import { checkTimeout, deadlineOf, type LockOptions } from "./file-lock";

export interface ClusterLockOptions extends LockOptions {
  /** Use this cluster (and `address`, default WARREN_ADDRESS or the local broker) on a connection of the lock's own, without init(). */
  cluster?: string;
  /** The broker address; needs `cluster`. */
  address?: string;
}

/** How often a waiter tries again without a notice (its holder may have died). */
const RETRY_MS = 300;

/** Lock queues held (or being declared) per connection in this process. */
const localHolds = new WeakMap<amqp.ChannelModel, Set<string>>();

interface Held {
  conn: amqp.ChannelModel;
  owned: boolean;
  ch: amqp.Channel;
  queue: string;
  exchange: string;
}

export class ClusterLock {
  readonly name: string;
  readonly timeout?: number;
  private readonly own?: { address: string; cluster: string };
  private held?: Held;
  private acquiring = false;

  constructor(name: string, options: ClusterLockOptions = {}) {
    const problems: FieldProblem[] = [];
    if (typeof name !== "string" || name === "") problems.push({ field: "name", problem: "must be a non-empty string" });
    else if (/[*#]/.test(name)) problems.push({ field: "name", problem: "must not contain * or # (it is a topic routing key)" });
    else if (Buffer.byteLength(name) > 200) problems.push({ field: "name", problem: "must be at most 200 bytes (it is part of a queue name)" });
    if (options.cluster !== undefined && (typeof options.cluster !== "string" || options.cluster === "")) {
      problems.push({ field: "cluster", problem: "must be a non-empty string" });
    }
    if (options.address !== undefined && options.cluster === undefined) {
      problems.push({ field: "address", problem: "needs `cluster` too (or init() warren and pass neither)" });
    }
    let timeout: number | undefined;
    try {
      timeout = checkTimeout("ClusterLock options", options.timeout);
    } catch (err) {
      problems.push(...(err as OptionsError).problems);
    }
    if (problems.length) throw new OptionsError("ClusterLock", problems);
    this.name = name;
    this.timeout = timeout;
    if (options.cluster !== undefined) this.own = { address: brokerAddress(options.address), cluster: options.cluster };
  }

  /** Whether this object holds the lock. */
  get isLocked(): boolean {
    return this.held !== undefined;
  }

  /** Waits until this object holds the lock, or rejects with LockTimeoutError after `timeout`. */
  async acquire(): Promise<void> {
    checkAcquirable("ClusterLock", this.name, this.held !== undefined, this.acquiring);
    this.acquiring = true;
    let conn: amqp.ChannelModel | undefined;
    let owned = false;
    try {
      const deadline = deadlineOf(this.timeout);
      let prefix: string;
      if (this.own) {
        conn = await connectBroker(this.own.address, connectionName(this.own.cluster, "lock", this.name));
        owned = true;
        prefix = `warren.${this.own.cluster}`;
      } else {
        const rt = currentRuntime(); // throws the "not initialized" error
        conn = rt.conn;
        prefix = rt.topo.prefix;
      }
      const queue = `${prefix}.lock.${this.name}`;
      const exchange = `${prefix}.locks`;
      if (Buffer.byteLength(queue) > 255) {
        throw new OptionsError("ClusterLock", [{ field: "name", problem: `makes the queue name ${queue} longer than AMQP's 255 bytes` }]);
      }
      let waiter: Waiter | undefined;
      try {
        for (;;) {
          const ch = await this.attempt(conn, queue);
          if (ch) {
            this.held = { conn, owned, ch, queue, exchange };
            return;
          }
          const remaining = deadline - Date.now();
          if (remaining <= 0) throw new LockTimeoutError("ClusterLock", this.name, this.timeout ?? Infinity);
          if (!waiter) {
            // Try again right after binding: a release between our attempt and the binding
            // notified nobody.
            waiter = await Waiter.open(conn, exchange, this.name);
            continue;
          }
          await waiter.next(Math.min(remaining, RETRY_MS));
        }
      } finally {
        waiter?.close();
      }
    } catch (err) {
      if (owned) await conn!.close().catch(() => undefined);
      throw err;
    } finally {
      this.acquiring = false;
    }
  }

  /** Releases the lock and wakes its waiters, in every process. */
  async release(): Promise<void> {
    const held = this.held;
    if (!held) {
      throw new WarrenError(`ClusterLock ${JSON.stringify(this.name)} is not held by this ClusterLock object: release() without a matching acquire()`);
    }
    this.held = undefined;
    const { conn, owned, queue, exchange } = held;
    let ch: amqp.Channel | undefined = held.ch;
    try {
      try {
        await ch.deleteQueue(queue);
      } catch {
        // The holding channel closed (the queue outlives it: it belongs to the connection), or
        // the connection died (and the broker removed the queue with it). Try a fresh channel.
        ch = await conn.createChannel().catch(() => undefined);
        if (ch) {
          ch.on("error", () => undefined);
          await ch.deleteQueue(queue).catch(() => undefined);
        }
      }
      localHolds.get(conn)?.delete(queue);
      // Only now, with the queue gone, tell the waiters (see the top of the file).
      if (ch) {
        try {
          ch.publish(exchange, this.name, Buffer.alloc(0));
        } catch {
          // channel already closed
        }
        await ch.close().catch(() => undefined);
      }
    } finally {
      localHolds.get(conn)?.delete(queue);
      if (owned) await conn.close().catch(() => undefined);
    }
  }

  /** One try: the channel holding the lock's queue, or undefined if another connection (or lock object) holds it. */
  private async attempt(conn: amqp.ChannelModel, queue: string): Promise<amqp.Channel | undefined> {
    let holds = localHolds.get(conn);
    if (!holds) localHolds.set(conn, (holds = new Set()));
    if (holds.has(queue)) return undefined; // another lock object on this connection
    holds.add(queue);
    let ch: amqp.Channel | undefined;
    try {
      ch = await conn.createChannel();
      ch.on("error", () => undefined);
      await ch.assertQueue(queue, { exclusive: true, durable: false, autoDelete: false });
      return ch;
    } catch (err) {
      holds.delete(queue);
      if ((err as { code?: unknown }).code === 405) return undefined; // RESOURCE_LOCKED; the broker closed ch
      await ch?.close().catch(() => undefined);
      throw new WarrenError(`ClusterLock ${JSON.stringify(this.name)}: cannot declare its queue ${queue}: ${(err as Error).message}`, { cause: err });
    }
  }
}

/** A waiter's subscription to release notices for one lock name. */
class Waiter {
  private ch?: amqp.Channel;
  private wake?: () => void;
  private noticed = false;

  static async open(conn: amqp.ChannelModel, exchange: string, name: string): Promise<Waiter> {
    const waiter = new Waiter();
    // The exchange is auto-delete: the last waiter leaving can delete it between our declare
    // and our bind (404). Try a few times, then rely on the timer alone.
    for (let i = 0; i < 3; i++) {
      let ch: amqp.Channel | undefined;
      try {
        ch = await conn.createChannel();
        ch.on("error", () => undefined);
        await ch.assertExchange(exchange, "topic", { durable: false, autoDelete: true });
        const { queue } = await ch.assertQueue("", { exclusive: true, autoDelete: true, durable: false });
        await ch.bindQueue(queue, exchange, name);
        await ch.consume(queue, () => waiter.notify(), { noAck: true });
        waiter.ch = ch;
        return waiter;
      } catch {
        await ch?.close().catch(() => undefined);
      }
    }
    return waiter;
  }

  private notify(): void {
    this.noticed = true;
    this.wake?.();
  }

  /** Resolves on a release notice (or one that came since the last call), or after `ms`. */
  next(ms: number): Promise<void> {
    if (this.noticed) {
      this.noticed = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.wake = undefined;
        self.noticed = false;
        resolve();
      }
      this.wake = done;
    });
  }

  /** Closing the channel cancels the consumer, which deletes the auto-delete queue (and its binding). */
  close(): void {
    this.ch?.close().catch(() => undefined);
    this.ch = undefined;
  }
}

/** Acquires the ClusterLock `name`, runs `fn`, and releases the lock however `fn` ends. */
export async function withClusterLock<T>(name: string, fn: () => T | Promise<T>, options?: ClusterLockOptions): Promise<T> {
  const lock = new ClusterLock(name, options);
  await lock.acquire();
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
