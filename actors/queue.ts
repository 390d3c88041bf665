/**
 * Queue: Ray's `ray.util.queue.Queue`, a first-in first-out queue that any task or actor can use.
 * `new Queue({ maxsize, actorOptions })` creates a `QueueActor` (an async actor holding the items)
 * and returns at once; the Queue itself is a small client that calls that actor, and it crosses
 * processes: its only enumerable field is `__warrenQueue` (the actor handle and maxsize), which
 * the revival registered below turns back into a Queue on the other side.
 *
 * Blocking calls wait without polling: the actor method awaits a promise that a later put (or
 * get) resolves, and the caller awaits the method's result. Empty and full queues throw
 * `warren.Empty` / `warren.Full` from the non-blocking calls and from blocking calls whose
 * `timeout` (seconds) runs out. Built on warren's public API only (see actors/index.ts).
 */
import { inspect } from "node:util";
import * as warren from "warren";

const KEY = "__warrenQueue";
/** The longest delay setTimeout takes; a longer timeout waits forever (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Getter {
  resolve(item: unknown): void;
  timer?: NodeJS.Timeout;
}

interface Putter {
  item: unknown;
  resolve(): void;
  timer?: NodeJS.Timeout;
}

/** A FIFO with O(1) push and shift. */
class Deque<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined as T;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

/**
 * The actor behind a Queue, like Ray's `_QueueActor` around an asyncio.Queue. Every method does
 * its work before its first await, so calls take effect in the order they reach the actor.
 * Invariants: callers wait in `getters` only while no item is stored, and in `putters` only while
 * the queue is full.
 */
@warren.actor({ numCpus: 0 })
export class QueueActor extends warren.Actor {
  readonly #items = new Deque<unknown>();
  readonly #getters: Getter[] = [];
  readonly #putters: Putter[] = [];
  readonly #maxsize: number;

  constructor(maxsize = 0) {
    super();
    checkMaxsize(maxsize, "QueueActor(maxsize)");
    this.#maxsize = maxsize;
  }

  qsize(): number {
    return this.#items.length;
  }

  empty(): boolean {
    return this.#items.length === 0;
  }

  full(): boolean {
    return this.#maxsize > 0 && this.#items.length >= this.#maxsize;
  }

  /** Adds `item`, waiting up to `timeout` seconds (null or undefined: forever) for room; else Full. */
  async put(item: unknown, timeout?: number | null): Promise<void> {
    checkTimeout(timeout, "QueueActor.put()");
    if (this.#handOff(item)) return;
    if (!this.full()) {
      this.#items.push(item);
      return;
    }
    if (timeout === 0) throw this.#fullError();
    await new Promise<void>((resolve, reject) => {
      const putter: Putter = { item, resolve };
      putter.timer = timer(timeout, () => {
        this.#putters.splice(this.#putters.indexOf(putter), 1);
        reject(new warren.Full(`the queue stayed full (maxsize ${this.#maxsize}) for the whole timeout of ${timeout}s`));
      });
      this.#putters.push(putter);
    });
  }

  /** Removes and returns the oldest item, waiting up to `timeout` seconds (null or undefined: forever); else Empty. */
  async get(timeout?: number | null): Promise<unknown> {
    checkTimeout(timeout, "QueueActor.get()");
    if (this.#items.length > 0) return this.#take();
    if (timeout === 0) throw new warren.Empty("the queue is empty");
    return new Promise<unknown>((resolve, reject) => {
      const getter: Getter = { resolve };
      getter.timer = timer(timeout, () => {
        this.#getters.splice(this.#getters.indexOf(getter), 1);
        reject(new warren.Empty(`no item arrived in the queue within the timeout of ${timeout}s`));
      });
      this.#getters.push(getter);
    });
  }

  putNowait(item: unknown): void {
    if (this.#handOff(item)) return;
    if (this.full()) throw this.#fullError();
    this.#items.push(item);
  }

  getNowait(): unknown {
    if (this.#items.length === 0) throw new warren.Empty("the queue is empty");
    return this.#take();
  }

  /** Adds all of `items`, or none of them (Full) when they do not all fit. */
  putNowaitBatch(items: unknown[]): void {
    if (!Array.isArray(items)) throw new TypeError("putNowaitBatch(items): items must be an array");
    if (this.#maxsize > 0 && items.length + this.qsize() > this.#maxsize) {
      throw new warren.Full(`cannot add ${items.length} items to a queue of size ${this.qsize()} and maxsize ${this.#maxsize}`);
    }
    for (const item of items) this.putNowait(item);
  }

  /** Removes and returns the `n` oldest items, or none of them (Empty) when fewer are stored. */
  getNowaitBatch(n: number): unknown[] {
    checkCount(n, "getNowaitBatch(n)");
    if (n > this.qsize()) throw new warren.Empty(`cannot get ${n} items from a queue of size ${this.qsize()}`);
    return Array.from({ length: n }, () => this.#take());
  }

  /** Queue.shutdown(): the actor exits once the calls it is running are done. */
  terminate(): void {
    warren.exitActor();
  }

  /** Gives `item` to the oldest waiting getter, if any. */
  #handOff(item: unknown): boolean {
    const getter = this.#getters.shift();
    if (!getter) return false;
    clearTimeout(getter.timer);
    getter.resolve(item);
    return true;
  }

  /** The oldest item; the room it frees goes to the oldest waiting putter. */
  #take(): unknown {
    const item = this.#items.shift();
    while (this.#putters.length > 0 && !this.full()) {
      const putter = this.#putters.shift()!;
      clearTimeout(putter.timer);
      this.#items.push(putter.item);
      putter.resolve();
    }
    return item;
  }

  #fullError(): warren.Full {
    return new warren.Full(`the queue is full (maxsize ${this.#maxsize})`);
  }
}

function timer(timeout: number | null | undefined, fire: () => void): NodeJS.Timeout | undefined {
  if (timeout === undefined || timeout === null || timeout * 1000 > MAX_TIMER_MS) return undefined;
  return setTimeout(fire, timeout * 1000);
}

// ---- the client ----------------------------------------------------------------------------

export interface QueueOptions {
  /** Most items the queue holds; 0 (the default) or less: no limit. */
  maxsize?: number;
  /** Options of the backing actor (`numCpus`, `resources`, `name`, `lifetime`...). */
  actorOptions?: warren.ActorOptions;
}

/** What crosses processes: the backing actor and the queue's maxsize. */
interface QueueState {
  actor: warren.ActorHandle<QueueActor>;
  maxsize: number;
}

/** Queues this process shut down: their methods throw instead of calling a dead actor. */
const shutDown = new WeakSet<object>();

/**
 * A first-in first-out queue shared by tasks and actors (Ray's `ray.util.queue.Queue`). Pass it
 * to tasks and actor methods like any value. Blocking calls wait without polling; `timeout` is in
 * seconds, and `null` (Python's None) or `undefined` waits forever.
 */
export class Queue<T = unknown> {
  /** The only enumerable field: it is what travels to other processes. */
  readonly __warrenQueue: QueueState;

  constructor(options: QueueOptions = {}) {
    checkOptions(options, ["maxsize", "actorOptions"], "new Queue() options");
    const { maxsize = 0, actorOptions = {} } = options;
    checkMaxsize(maxsize, "new Queue() options");
    if (actorOptions === null || typeof actorOptions !== "object" || Array.isArray(actorOptions)) {
      throw new warren.OptionsError("new Queue() options", [{ field: "actorOptions", problem: "must be an object of actor options" }]);
    }
    const actor = QueueActor.options(actorOptions).remote(maxsize);
    this.__warrenQueue = { actor, maxsize };
  }

  /** The queue's maxsize (0 or less: unbounded). */
  get maxsize(): number {
    return this.__warrenQueue.maxsize;
  }

  /** The handle of the backing actor. */
  get actor(): warren.ActorHandle<QueueActor> {
    return this.__warrenQueue.actor;
  }

  /** How many items the queue holds now. */
  async qsize(): Promise<number> {
    return call(this.handle().qsize.remote());
  }

  /** Same as `qsize()` (Ray has both). */
  async size(): Promise<number> {
    return this.qsize();
  }

  async empty(): Promise<boolean> {
    return call(this.handle().empty.remote());
  }

  /** True when the queue holds maxsize items (never for an unbounded queue). */
  async full(): Promise<boolean> {
    return call(this.handle().full.remote());
  }

  /**
   * Adds `item` at the back. `block: false`: throws Full at once when the queue is full. Else
   * waits for room, up to `timeout` seconds if given and not null (then throws Full).
   */
  async put(item: T, options: { block?: boolean; timeout?: number | null } = {}): Promise<void> {
    const { block, timeout } = blockingOptions(options, "Queue.put() options");
    const actor = this.handle();
    await call(block ? actor.put.remote(item, timeout) : actor.putNowait.remote(item));
  }

  /**
   * Removes and returns the item at the front. `block: false`: throws Empty at once when the
   * queue is empty. Else waits for an item, up to `timeout` seconds if given and not null (then throws Empty).
   */
  async get(options: { block?: boolean; timeout?: number | null } = {}): Promise<T> {
    const { block, timeout } = blockingOptions(options, "Queue.get() options");
    const actor = this.handle();
    return (await call(block ? actor.get.remote(timeout) : actor.getNowait.remote())) as T;
  }

  /** `put(item, { block: false })`. */
  async putNowait(item: T): Promise<void> {
    await call(this.handle().putNowait.remote(item));
  }

  /** `get({ block: false })`. */
  async getNowait(): Promise<T> {
    return (await call(this.handle().getNowait.remote())) as T;
  }

  /** Adds every item of `items` in order, or none of them (throws Full) if they do not all fit. */
  async putNowaitBatch(items: Iterable<T>): Promise<void> {
    if (items === null || items === undefined || typeof (items as Iterable<T>)[Symbol.iterator] !== "function") {
      throw new TypeError(`Queue.putNowaitBatch(items): items must be an iterable (an array...), got ${describe(items)}`);
    }
    await call(this.handle().putNowaitBatch.remote(Array.from(items)));
  }

  /** Removes and returns the `n` items at the front, or none of them (throws Empty) if fewer are there. */
  async getNowaitBatch(n: number): Promise<T[]> {
    checkCount(n, "Queue.getNowaitBatch(n)");
    return (await call(this.handle().getNowaitBatch.remote(n))) as T[];
  }

  /**
   * Ends the backing actor; the Queue is unusable afterwards (in every process). `force`: kill
   * it at once. Else it exits once the calls it is running finish, and is killed if that takes
   * longer than `gracePeriod` seconds (calls still blocked then fail with ActorDiedError).
   */
  async shutdown(options: { force?: boolean; gracePeriod?: number } = {}): Promise<void> {
    checkOptions(options, ["force", "gracePeriod"], "Queue.shutdown() options");
    const { force = false, gracePeriod = 5 } = options;
    const problems: { field: string; problem: string }[] = [];
    if (typeof force !== "boolean") problems.push({ field: "force", problem: `must be a boolean (got ${describe(force)})` });
    if (typeof gracePeriod !== "number" || !(gracePeriod >= 0)) {
      problems.push({ field: "gracePeriod", problem: `must be a number of seconds >= 0 (got ${describe(gracePeriod)})` });
    }
    if (problems.length) throw new warren.OptionsError("Queue.shutdown() options", problems);
    if (shutDown.has(this)) return;
    shutDown.add(this);
    const actor = this.__warrenQueue.actor;
    if (!force && (await exitedGracefully(actor, gracePeriod))) return;
    await warren.kill(actor, { noRestart: true });
  }

  toString(): string {
    return `Queue(maxsize=${this.maxsize}, actor=${this.__warrenQueue.actor.actorId})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }

  private handle(): warren.ActorHandle<QueueActor> {
    if (shutDown.has(this)) throw new warren.WarrenError("this Queue was shut down; create a new Queue");
    return this.__warrenQueue.actor;
  }
}

// A Queue that reaches another process arrives as `{ __warrenQueue: { actor, maxsize } }` (its handle revived).
warren.registerRevival(KEY, (state: { actor: warren.ActorHandle<QueueActor>; maxsize: number }) => {
  const queue = Object.create(Queue.prototype) as Queue;
  Object.defineProperty(queue, KEY, { value: state, enumerable: true });
  return queue;
});

/**
 * Asks the actor to exit after its running calls and waits up to `gracePeriod` seconds for it to
 * be gone: a call sent after the exit request is answered (with ActorDiedError) only then.
 */
async function exitedGracefully(actor: warren.ActorHandle<QueueActor>, gracePeriod: number): Promise<boolean> {
  const deadline = Date.now() + gracePeriod * 1000;
  try {
    await warren.get(actor.terminate.remote(), { timeout: gracePeriod });
  } catch (err) {
    return err instanceof warren.ActorDiedError; // already gone; else it did not answer in time
  }
  const probe = actor.qsize.remote();
  const [ready] = await warren.wait([probe], { timeout: Math.max(0, (deadline - Date.now()) / 1000) });
  return ready.length === 1;
}

/** The value of an actor call, with the queue's own Empty/Full thrown as themselves. */
async function call<R>(ref: warren.ObjectRef<R>): Promise<R> {
  try {
    return await warren.get(ref);
  } catch (err) {
    if (err instanceof warren.TaskError) {
      const cause = err.cause;
      if (cause instanceof warren.Empty) throw new warren.Empty(cause.message, { cause: err });
      if (cause instanceof warren.Full) throw new warren.Full(cause.message, { cause: err });
    }
    throw err;
  }
}

// ---- argument checks -----------------------------------------------------------------------

function checkOptions(options: unknown, known: string[], where: string): void {
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new warren.OptionsError(where, [{ field: "(options)", problem: `must be an object, got ${describe(options)}` }]);
  }
  const unknown = Object.keys(options as object).filter((k) => !known.includes(k));
  if (unknown.length) {
    throw new warren.OptionsError(where, unknown.map((k) => ({ field: k, problem: `unknown option (known: ${known.join(", ")})` })));
  }
}

function blockingOptions(options: unknown, where: string): { block: boolean; timeout: number | null | undefined } {
  checkOptions(options, ["block", "timeout"], where);
  const { block = true, timeout } = options as { block?: unknown; timeout?: unknown };
  const problems: { field: string; problem: string }[] = [];
  if (typeof block !== "boolean") problems.push({ field: "block", problem: `must be a boolean (got ${describe(block)})` });
  if (!isTimeout(timeout)) problems.push({ field: "timeout", problem: `${TIMEOUT_RULE} (got ${describe(timeout)})` });
  if (problems.length) throw new warren.OptionsError(where, problems);
  return { block: block as boolean, timeout: timeout as number | null | undefined };
}

const TIMEOUT_RULE = "must be a number of seconds >= 0, or null (or left out) to wait forever";

function isTimeout(timeout: unknown): timeout is number | null | undefined {
  return timeout === undefined || timeout === null || (typeof timeout === "number" && timeout >= 0);
}

function checkTimeout(timeout: unknown, where: string): void {
  if (!isTimeout(timeout)) throw new RangeError(`${where}: timeout ${TIMEOUT_RULE} (got ${describe(timeout)})`);
}

function checkMaxsize(maxsize: unknown, where: string): void {
  if (typeof maxsize !== "number" || !Number.isInteger(maxsize)) {
    throw new warren.OptionsError(where, [{ field: "maxsize", problem: `must be an integer (0 or less: unbounded), got ${describe(maxsize)}` }]);
  }
}

function checkCount(n: unknown, where: string): void {
  if (typeof n !== "number" || !Number.isInteger(n)) throw new TypeError(`${where}: n must be an integer, got ${describe(n)}`);
  if (n < 0) throw new RangeError(`${where}: n must be >= 0, got ${n}`);
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "object") return `a ${v.constructor?.name ?? "object"}`;
  return `${typeof v} ${String(v)}`;
}
