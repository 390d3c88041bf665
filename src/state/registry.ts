/**
 * state: the head's registry (Ray's GCS role). It answers requests on the head queue: named
 * actors (one name, one actor: the head decides, one request at a time) and actor lifecycles.
 */
import { WarrenError } from "../errors";
import { EncodedError, encodeError } from "../serialization";
import type { RpcReply } from "../transport";
import { ActorEvent, ActorState, startActorLifecycle } from "../lifecycle/actor";
import type { HandleInfo } from "../api/actor";

export interface ActorRecord {
  handle: HandleInfo;
  name?: string;
  namespace: string;
  detached: boolean;
  lifecycle: ReturnType<typeof startActorLifecycle>;
}

export interface RegisterActor {
  handle: HandleInfo;
  name?: string;
  namespace: string;
  getIfExists: boolean;
  detached: boolean;
}

/** The answer to a registration: the actor the caller should use (another one if the name existed). */
export type Registered = { created: boolean; handle: HandleInfo };

export class HeadRegistry {
  private readonly actors = new Map<string, ActorRecord>();
  private readonly named = new Map<string, string>();

  /** Request kinds the head answers, each from a plain payload to a plain reply. */
  readonly handlers: Record<string, (payload: any) => unknown> = {
    "actor.register": (p: RegisterActor) => this.register(p),
    "actor.get": (p: { name: string; namespace: string }) => this.getNamed(p.name, p.namespace),
    "actor.event": (p: { id: string; event: ActorEvent }) => this.onEvent(p.id, p.event),
    "actor.info": (p: { id: string }) => this.info(p.id),
  };

  register(p: RegisterActor): Registered {
    if (p.name !== undefined) {
      const key = `${p.namespace}/${p.name}`;
      const existing = this.named.get(key);
      if (existing && this.state(existing) !== "DEAD") {
        if (p.getIfExists) return { created: false, handle: this.actors.get(existing)!.handle };
        throw new WarrenError(
          `the actor name "${p.name}" is already taken in namespace "${p.namespace}": use ` +
            `warren.getActor("${p.name}", { namespace: "${p.namespace}" }) to get it, getIfExists: true to get or create it, or another name`,
        );
      }
      this.named.set(key, p.handle.id);
    }
    this.actors.set(p.handle.id, { handle: p.handle, name: p.name, namespace: p.namespace, detached: p.detached, lifecycle: startActorLifecycle() });
    return { created: true, handle: p.handle };
  }

  getNamed(name: string, namespace: string): HandleInfo | null {
    const id = this.named.get(`${namespace}/${name}`);
    return id && this.state(id) !== "DEAD" ? this.actors.get(id)!.handle : null;
  }

  onEvent(id: string, event: ActorEvent): void {
    this.actors.get(id)?.lifecycle.send(event);
  }

  info(id: string): { state: ActorState; cause?: EncodedError; className?: string } | null {
    const a = this.actors.get(id);
    if (!a) return null;
    const snap = a.lifecycle.getSnapshot();
    return { state: snap.value as ActorState, cause: snap.context.cause, className: a.handle.className };
  }

  state(id: string): ActorState | undefined {
    return this.actors.get(id)?.lifecycle.getSnapshot().value as ActorState | undefined;
  }

  list(): ActorRecord[] {
    return [...this.actors.values()];
  }
}

/** Runs a handler, turning a throw into an error reply. */
export function answer(registry: HeadRegistry, kind: string, payload: unknown): RpcReply {
  const handler = registry.handlers[kind];
  try {
    if (!handler) throw new WarrenError(`the head does not answer "${kind}"`);
    return { ok: true, value: handler(payload) };
  } catch (err) {
    return { ok: false, error: encodeError(err) };
  }
}
