/**
 * What a node held when its broker connection went (node/daemon.ts down()), for the deliveries
 * of it that come again once the connection is back: a task still running here since before is
 * dropped (its result comes from the run under way), and one that was waiting here is a new
 * delivery, not one the broker gave back because a consumer died with a crash.
 */
import type * as amqp from "amqplib";

export class HeldAtLoss {
  /** Task id: whether it was running. */
  private held = new Map<string, boolean>();

  /** The connection went: what waited (`waiting`) and what ran (`running`) here then. */
  lost(waiting: amqp.Message[], running: amqp.Message[]): void {
    this.held = new Map();
    for (const m of waiting) this.held.set(m.properties.messageId, false);
    for (const m of running) this.held.set(m.properties.messageId, true);
  }

  /** Deliveries of what was held come again only while the broker still had them: forget it after `ms`. */
  forgetAfter(ms: number): void {
    const held = this.held;
    setTimeout(() => held.clear(), ms).unref();
  }

  /**
   * Whether to drop delivery `m` (`runsHere`: whether a task of its id runs on this node now); a
   * held one that is not dropped loses its redelivered flag.
   */
  screen(m: amqp.ConsumeMessage, runsHere: (taskId: string) => boolean): boolean {
    if (this.held.size === 0) return false;
    const id = m.properties.messageId;
    const wasRunning = this.held.get(id);
    if (wasRunning === undefined) return false;
    if (wasRunning && runsHere(id)) return true;
    m.fields.redelivered = false;
    return false;
  }
}
