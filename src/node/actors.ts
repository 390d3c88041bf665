/**
 * node actors: the actors this node's workers host, from the creation task's end to the actor's
 * death: an actor with a worker of its own, or a shared one in a host process (worker-pool.ts). It owns each hosted actor's lifecycle on this node: ALIVE (the creation's resources
 * traded for what the actor holds, calls served once the head has it), its worker's exit (a
 * restart, by publishing the creation again while maxRestarts allows, or its death), kills, and
 * burial (the mailbox drained, every call left answered, the death broadcast).
 *
 * Invariants a change must keep:
 * - Whoever decides that an actor must not restart (a kill, exitActor(), a constructor that
 *   threw) sets its `final` before its worker exits; an actor with a `final` is never restarted.
 * - A dead actor's mailbox is drained only after its worker (the mailbox's consumer) is gone,
 *   or for a shared actor its consumer (actor-stopped), and the death is broadcast after the drain: a call the broker routed to the mailbox just as
 *   it was deleted is dropped without a trace, so its caller learns of the death from the broadcast.
 */
import * as v8 from "node:v8";
import type * as amqp from "amqplib";
import { ActorDiedError } from "../errors";
import { decodeError, encodeError, type EncodedError } from "../serialization";
import { lastOutput, mayRetry } from "../scheduling/retry";
import type { Demand, Ledger, Resources } from "../scheduling/shape";
import type { Topology } from "../transport";
import { drainQueue } from "../transport/queues";
import type { RpcClient } from "../transport/rpc";
import type { ActorEvent } from "../wire/head";
import type { ActorCreationMessage } from "../wire/head";
import type { ActorName } from "../wire/descriptors";
import { Kind } from "../wire/kinds";
import type { ResultMessage } from "../wire/messages";
import type { WorkerDeath } from "../wire/ipc";
import type { TaskChannel } from "./deliveries";
import type { GpuPool } from "./gpus";
import type { NodeOptions } from "./options";
import type { Worker, WorkerPool } from "./worker-pool";

export interface HostedActor extends ActorName {
  /** The creation delivery, published again to restart the actor. */
  creation: amqp.ConsumeMessage;
  held: Resources;
  heldUnits: Demand;
  gpuIds: number[];
  alive: boolean;
  /** A shared actor killed while being created: it is stopped once alive. */
  stopping?: boolean;
  /** Why it must not restart, once that is decided (killed, exited, constructor threw). */
  final?: Error;
}

export interface ActorsDeps {
  options: Pick<NodeOptions, "headWaitMs">;
  nodeId: string;
  conn: amqp.ChannelModel;
  ch: amqp.Channel;
  topo: Topology;
  rpc: RpcClient;
  tasks: TaskChannel;
  free: Ledger;
  gpus: GpuPool;
  pool: WorkerPool;
  replyToOwner(taskId: string, r: ResultMessage): void;
}

/** How many of a class's actors are in a state, for the node's metrics. */
export interface ActorCount {
  className: string;
  state: "PENDING_CREATION" | "ALIVE" | "DEAD";
  count: number;
}

export class Actors {
  /** Actors this node has buried, by class. */
  private readonly buried = new Map<string, number>();

  constructor(private readonly deps: ActorsDeps) {}

  /** This node's actors by class: being created or alive on its workers, and those it has buried. */
  counts(): ActorCount[] {
    const rows = new Map<string, ActorCount>();
    const add = (className: string, state: ActorCount["state"], n: number) => {
      const key = `${state} ${className}`;
      rows.set(key, { className, state, count: (rows.get(key)?.count ?? 0) + n });
    };
    for (const w of this.deps.pool.all) for (const a of this.deps.pool.actorsOf(w)) add(a.className, a.alive ? "ALIVE" : "PENDING_CREATION", 1);
    for (const [className, n] of this.buried) add(className, "DEAD", n);
    return [...rows.values()];
  }

  /**
   * A worker's actor is constructed and consumes its mailbox: its creation is done. The actor now
   * holds only `held` (an actor without numCpus needs a CPU to be placed, none to live). Call the
   * scheduler after: the creation's resources may be free again.
   */
  alive(w: Worker, id: string, pid: number): void {
    const { free, pool, rpc, tasks } = this.deps;
    const a = pool.actorOf(w, id);
    if (!a) return;
    const t = pool.creationOf(w, a)!;
    pool.creationDone(w, a);
    a.alive = true;
    tasks.ackTask(t);
    free.give(t.units);
    free.take(a.heldUnits);
    this.reportFree();
    const c = t.msg;
    // The actor serves calls once the head has it ALIVE, or after headWaitMs without an answer
    // (a head that is gone answers nothing, and its state API nobody).
    const timer = setTimeout(() => serve(), this.deps.options.headWaitMs);
    const serve = () => {
      clearTimeout(timer);
      pool.post(w, a.stopping ? { t: "stop-actor", id } : { t: "serve", id });
    };
    rpc.head("actor.event", {
      id: a.id,
      event: { type: "ALIVE", nodeId: this.deps.nodeId, pid },
      creation: { body: c.content, routingKey: c.fields.routingKey, headers: c.properties.headers ?? {}, messageId: c.properties.messageId, type: c.properties.type },
    }).then(serve, serve);
  }

  /** The actor's constructor threw: it is dead with that cause, and its worker goes (a host's stays). */
  constructorFailed(w: Worker, id: string, error: EncodedError): void {
    const a = this.deps.pool.actorOf(w, id);
    if (!a) return;
    let thrown = error; // the TaskError's innermost cause: what the constructor threw
    while (thrown.cause && "name" in thrown.cause) thrown = thrown.cause;
    const what = `${thrown.className ?? thrown.name}: ${thrown.message}`;
    a.final = new ActorDiedError(`the actor ${id} died: its constructor threw ${what}`, { cause: decodeError(error) });
    if (a === w.actor) w.proc.kill("SIGKILL");
    else this.stopped(w, id);
  }

  /** The actor called exitActor(): its worker exits by itself; a shared one has stopped in its host. */
  exited(w: Worker, id: string): void {
    const a = this.deps.pool.actorOf(w, id);
    if (!a) return;
    a.final = new ActorDiedError(`the actor ${id} exited: it called exitActor()`);
    if (a !== w.actor) this.stopped(w, id);
  }

  /** A shared actor is out of its host (killed, exited, or its constructor threw): it restarts or is dead, as if its worker had exited. */
  stopped(w: Worker, id: string): void {
    const a = w.host?.actors.get(id);
    if (!a) return;
    w.host!.actors.delete(id);
    this.workerExit(w, a, { pid: w.proc.pid ?? 0, how: "stopped in its host process", log: w.logFile, tail: [] });
  }

  /** An actor's worker is gone: restart the actor if it may, else it is dead for good. */
  workerExit(w: Worker, a: HostedActor, death: WorkerDeath): void {
    const { free, gpus, pool, tasks } = this.deps;
    const creation = pool.creationOf(w, a);
    if (a.alive) {
      free.give(a.heldUnits);
      gpus.release(a.gpuIds, a.held.GPU ?? 0);
    } else if (w.host) free.give(creation!.units);
    else pool.release(w);
    this.reportFree();
    const h = a.creation.properties.headers ?? {};
    const restarts: number = h.restarts ?? 0;
    const maxRestarts: number = h.maxRestarts ?? 0;
    const final = a.final ?? (!mayRetry(restarts, maxRestarts)
      ? new ActorDiedError(`the actor ${a.id} died: its worker (pid=${w.proc.pid}) exited (${death.how}) and it has used its ${maxRestarts} restart(s) (maxRestarts); its output: ${lastOutput(death)}`)
      : undefined);
    if (creation) {
      tasks.ackTask(creation);
      pool.creationDone(w, a);
    }
    if (final) {
      void this.dead(a, final);
    } else {
      this.event(a.id, { type: "RESTARTING" });
      tasks.republish(a.creation, { ...h, restarts: restarts + 1 });
    }
  }

  /**
   * Kills the worker hosting actor `id` (for good with noRestart), or stops a shared actor in its
   * host process, which lives on for its other actors. The scheduler must hear of a
   * noRestart kill first, so a creation of it waiting there is dropped, and schedule after.
   */
  kill(k: { id: string; noRestart: boolean; why?: string }): void {
    const { pool } = this.deps;
    for (const w of pool.all) {
      const a = pool.actorOf(w, k.id);
      if (!a) continue;
      if (k.noRestart) a.final = new ActorDiedError(`the actor ${k.id} was killed: ${k.why ?? "warren.kill() was called"}`);
      if (a === w.actor) w.proc.kill("SIGKILL");
      else if (a.alive) pool.post(w, { t: "stop-actor", id: k.id });
      else a.stopping = true; // still in its constructor: stopped once alive (alive() above)
    }
  }

  /**
   * Records an actor's death, answers every call left in its mailbox and removes it, then tells
   * every process: a call the broker routed to the mailbox just as it was deleted is dropped
   * without a trace, so its caller learns of the death from this broadcast instead.
   */
  async dead(actor: ActorName, error: Error): Promise<void> {
    const { conn, ch, topo } = this.deps;
    const actorId = actor.id;
    this.buried.set(actor.className, (this.buried.get(actor.className) ?? 0) + 1);
    const encoded = encodeError(error);
    this.event(actorId, { type: "DEAD", cause: encoded });
    await drainQueue(conn, topo.mailbox(actor), (m) =>
      this.deps.replyToOwner(m.properties.messageId, { task: m.properties.messageId, error: encoded }), topo.durable,
    ).catch((err) => console.error(`warren node: could not answer the calls left to dead actor ${actorId}:`, err));
    ch.publish(topo.control, "all.actor-dead", v8.serialize({ id: actorId, cause: encoded }), { type: Kind.actorDead });
  }

  /**
   * Tells the head what is free here now, ahead of the actor's event on the same channel: whoever
   * hears of the actor placed (its first call answered) or gone (kill() resolved) sees its
   * resources taken or free, not as of the last heartbeat.
   */
  private reportFree(): void {
    this.deps.rpc.notify("node.available", { nodeId: this.deps.nodeId, available: this.deps.free.toResources() });
  }

  private event(id: string, event: ActorEvent, creation?: ActorCreationMessage): void {
    this.deps.rpc.notify("actor.event", { id, event, creation });
  }
}
