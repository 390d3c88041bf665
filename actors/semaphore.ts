/**
 * Semaphore: Ray's test_utils Semaphore, an asyncio.Semaphore in an actor. `acquire()` takes a
 * permit, waiting (on a promise, without polling) until one is free; waiters are served first in,
 * first out. `release()` hands a permit to the oldest waiter or returns it to the pool; like
 * asyncio's, it may raise the count above the initial value. `locked()` is true when no permit
 * is free. Built on warren's public API only (see actors/index.ts).
 */
import * as warren from "warren";

@warren.actor({ numCpus: 0 })
export class Semaphore extends warren.Actor {
  private value: number;
  private readonly waiters: Array<() => void> = [];

  constructor(value = 1) {
    super();
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
      throw new RangeError(`Semaphore(value): value must be an integer >= 0 (got ${String(value)})`);
    }
    this.value = value;
  }

  /** Takes a permit, waiting until one is free. */
  async acquire(): Promise<void> {
    if (this.value > 0 && this.waiters.length === 0) {
      this.value--;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Returns a permit: the oldest waiter gets it at once, else it goes back to the pool. */
  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.value++;
  }

  /** True when `acquire()` would wait. */
  locked(): boolean {
    return this.value === 0;
  }
}
