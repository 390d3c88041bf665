/**
 * What a consumer of shape queues (a node, or a worker holding a lease) does with a delivery it
 * does not run to the end: publish it again for another attempt, give it back unstarted, or, for
 * one the broker gave back because the consumer holding it died mid-task, count that attempt.
 */
import type * as amqp from "amqplib";
import { ActorDiedError, WorkerCrashedError } from "../errors";
import { readHead } from "../serialization/messages";

/** Publishes a copy of a delivery where it was first sent (its queue's tail), with `headers` (its own unless given). */
export function publishAgain(ch: amqp.Channel, m: amqp.ConsumeMessage, headers: Record<string, unknown> = m.properties.headers ?? {}): void {
  ch.publish(m.fields.exchange, m.fields.routingKey, m.content, { messageId: m.properties.messageId, type: m.properties.type, headers });
}

/** The headers of a task's next attempt. */
export function nextAttempt(h: Record<string, any> = {}): Record<string, unknown> {
  return { ...h, attempt: (h.attempt ?? 0) + 1 };
}

export type Redelivery =
  | { publish: true; headers: Record<string, unknown> }
  | { publish: false; error: Error; actorId?: string };

/** What to do with a delivery the broker gave back because its consumer died holding it. */
export function onRedelivery(m: amqp.Message): Redelivery {
  const h: Record<string, any> = m.properties.headers ?? {};
  const name: string = m.properties.type;
  if (h.actor) {
    const restarts: number = h.restarts ?? 0;
    if (h.maxRestarts < 0 || restarts < h.maxRestarts) return { publish: true, headers: { ...h, restarts: restarts + 1 } };
    return {
      publish: false,
      actorId: h.actor,
      error: new ActorDiedError(`the actor ${h.actor} died with the worker or node creating it, and has no restarts left (maxRestarts)`),
    };
  }
  const attempt: number = h.attempt ?? 0;
  const { maxRetries } = readHead(m.content);
  if (maxRetries < 0 || attempt < maxRetries) return { publish: true, headers: nextAttempt(h) };
  return { publish: false, error: new WorkerCrashedError(`the worker or node running ${name} died ${attempt + 1} time(s); maxRetries is ${maxRetries}`) };
}
