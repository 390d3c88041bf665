/**
 * SignalActor: Ray's test_utils SignalActor, an asyncio.Event in an actor. `send()` sets the
 * event and wakes every pending `wait()`; `send(true)` clears it again right after, so only the
 * calls already waiting get through. Waiters are promises that `send` resolves: nothing polls.
 * Built on warren's public API only (see actors/index.ts).
 */
import * as warren from "warren";

@warren.actor({ numCpus: 0 })
export class SignalActor extends warren.Actor {
  private isSet = false;
  private readonly waiters: Array<() => void> = [];

  /** Sets the signal, releasing every pending `wait()`; with `clear`, unsets it right after. */
  send(clear = false): void {
    this.isSet = true;
    for (const wake of this.waiters.splice(0)) wake();
    if (clear) this.isSet = false;
  }

  /** Resolves once the signal is set (at once if it is, or if `shouldWait` is false). */
  async wait(shouldWait = true): Promise<void> {
    if (!shouldWait || this.isSet) return;
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** How many `wait()` calls are pending. */
  curNumWaiters(): number {
    return this.waiters.length;
  }
}
