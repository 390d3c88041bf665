/**
 * What a consumer of shape queues (a node, or a worker holding a lease) does with a delivery it
 * does not run to the end: publish it again for another attempt, give it back unstarted, or, for
 * one the broker gave back because the consumer holding it died mid-task, count that attempt.
 */
import type * as amqp from "amqplib";
import { ActorDiedError, WorkerCrashedError } from "../errors";
import { readHead } from "../wire/messages";
import type { WorkerDeath } from "../wire/ipc";
import { type ActorName, creationActor } from "../wire/descriptors";

/** Publishes a copy of a delivery where it was first sent (its queue's tail), with `headers` (its own unless given). */
export function publishAgain(ch: amqp.Channel, m: amqp.ConsumeMessage, headers: Record<string, unknown> = m.properties.headers ?? {}): void {
  const { messageId, type, deliveryMode } = m.properties; // persistent in durable mode, as it came
  ch.publish(m.fields.exchange, m.fields.routingKey, m.content, { messageId, type, headers, deliveryMode });
}

/** Gives a delivery back unstarted: a copy at its queue's tail, this one acked. */
export function giveBack(ch: amqp.Channel, m: amqp.ConsumeMessage): void {
  publishAgain(ch, m);
  ch.ack(m);
}

/**
 * Whether a budget of `max` retries (or restarts) allows one more after `used`: the one rule
 * behind maxRetries, maxRestarts and lineage reconstruction, where -1 means without end.
 */
export function mayRetry(used: number, max: number): boolean {
  return max < 0 || used < max;
}

/** The headers of a task's next attempt. */
export function nextAttempt(h: Record<string, any> = {}): Record<string, unknown> {
  return { ...h, attempt: (h.attempt ?? 0) + 1 };
}

export type Redelivery =
  | { publish: true; headers: Record<string, unknown> }
  /** `error(died)`: why it failed, saying how its worker died where that is known (RecentDeaths). */
  | { publish: false; error: (died?: WorkerDeath) => Error; actor?: ActorName };

/** The error of a task whose worker (or node) died once more than its maxRetries allow. */
export function workerCrashed(name: string, attempt: number, maxRetries: number, died?: WorkerDeath): WorkerCrashedError {
  const who = died ? `the worker (pid=${died.pid}) running ${name} died (${died.how})` : `the worker or node running ${name} died`;
  return new WorkerCrashedError(
    `${who} ${attempt + 1} time(s); maxRetries is ${maxRetries}. Raise it with .options({ maxRetries })` +
      (died ? `, or look for the cause in ${lastOutput(died)}` : ""),
  );
}

/** A dead worker's log file, and its last lines there. */
export function lastOutput(died: WorkerDeath): string {
  const tail = died.tail.length ? `. Its last output:\n${died.tail.map((l) => `  ${l}`).join("\n")}` : "";
  return `${died.log}${died.kept ? ` (kept after shutdown as ${died.kept})` : ""}${tail}`;
}

/**
 * Worker deaths this process heard of lately (a node's own, and those its node tells its workers),
 * by the queue the worker leased: the broker gives a leased task back without saying why, so the
 * error names the worker and how it died when the death is known here.
 */
export class RecentDeaths {
  private readonly deaths = new Map<string, { death: WorkerDeath; at: number }>();
  private readonly waiting = new Map<string, Set<(death: WorkerDeath) => void>>();

  note(queue: string, death: WorkerDeath): void {
    this.deaths.set(queue, { death, at: Date.now() });
    for (const w of this.waiting.get(queue) ?? []) w(death);
    this.waiting.delete(queue);
  }

  /**
   * How the worker that leased `queue` died, if it died within the last RECENT_MS; else waits up
   * to NEWS_MS for the news (the broker may give the task back before the node hears of the exit).
   */
  async of(queue: string): Promise<WorkerDeath | undefined> {
    const d = this.deaths.get(queue);
    if (d && Date.now() - d.at < RECENT_MS) return d.death;
    let timer!: NodeJS.Timeout;
    let heard!: (death: WorkerDeath) => void;
    const news = new Promise<WorkerDeath | undefined>((resolve) => {
      heard = resolve;
      timer = setTimeout(() => resolve(undefined), NEWS_MS);
    });
    let set = this.waiting.get(queue);
    if (!set) this.waiting.set(queue, (set = new Set()));
    set.add(heard);
    const death = await news;
    clearTimeout(timer);
    set.delete(heard);
    if (set.size === 0 && this.waiting.get(queue) === set) this.waiting.delete(queue);
    return death;
  }
}
/** How long a worker's death counts as the cause of a task its lease held. */
const RECENT_MS = 10_000;
/** How long a task the broker gave back waits to hear how its worker died. */
const NEWS_MS = 500;

/** What to do with a delivery the broker gave back because its consumer died holding it. */
export function onRedelivery(m: amqp.Message): Redelivery {
  const h: Record<string, any> = m.properties.headers ?? {};
  const name: string = m.properties.type;
  if (h.actor) {
    const restarts: number = h.restarts ?? 0;
    if (mayRetry(restarts, h.maxRestarts)) return { publish: true, headers: { ...h, restarts: restarts + 1 } };
    return {
      publish: false,
      actor: creationActor(h),
      error: () => new ActorDiedError(`the actor ${h.actor} died with the worker or node creating it, and has no restarts left (maxRestarts)`),
    };
  }
  const attempt: number = h.attempt ?? 0;
  const { maxRetries } = readHead(m.content);
  if (mayRetry(attempt, maxRetries)) return { publish: true, headers: nextAttempt(h) };
  return { publish: false, error: (died) => workerCrashed(name, attempt, maxRetries, died) };
}
