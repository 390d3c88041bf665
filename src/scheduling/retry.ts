/**
 * What a consumer does with a delivery the broker gave back because the consumer holding it died
 * (a worker or a node that died mid-task): that was an attempt. Shared by nodes and by workers
 * holding a lease, which both consume shape queues.
 */
import { ActorDiedError, WorkerCrashedError } from "../errors";

export type Redelivery =
  | { publish: true; headers: Record<string, unknown> }
  | { publish: false; error: Error; actorId?: string };

export function onRedelivery(name: string, h: Record<string, any>): Redelivery {
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
  if (h.maxRetries < 0 || attempt < h.maxRetries) return { publish: true, headers: { ...h, attempt: attempt + 1 } };
  return { publish: false, error: new WorkerCrashedError(`the worker or node running ${name} died ${attempt + 1} time(s); maxRetries is ${h.maxRetries}`) };
}
