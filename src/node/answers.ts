/**
 * What a node answers other processes on its control queue, besides commands: chunks of the
 * objects in its store (processes on other nodes read them so), state queries, and its workers.
 */
import { WarrenError } from "../errors";
import type { HeadServer } from "../head/server";
import type { ObjectStore } from "../objects/store";
import { encodeError } from "../serialization";
import type { RpcReply, StateAnswer } from "../wire/kinds";
import type { NodeRequests, PayloadOf, ReplyOf, WorkerRow } from "../wire/head";
import type { WorkerPool } from "./worker-pool";
import { processTitle } from "./processes";

/** A chunk of a stored object (serialize copies it out of the map). */
export function objectChunk(store: ObjectStore, nodeId: string, p: PayloadOf<NodeRequests, "object.fetch">): RpcReply<ReplyOf<NodeRequests, "object.fetch">> {
  const chunk = store.chunk(p.id, p.offset, p.length);
  return chunk ? { ok: true, value: { chunk } } : { ok: false, error: encodeError(new WarrenError(`object ${p.id} is not in the store of node ${nodeId}`)) };
}

/**
 * A state query (transport/rpc.ts gather): a node has no rows of its own, but says whom the
 * asker should wait for: its ready workers and, on the head node, the alive nodes and drivers.
 */
export function stateAnswer(nodeId: string, pool: WorkerPool, head: HeadServer | undefined): StateAnswer {
  return { from: `node:${nodeId}`, rows: [], vouch: { ...head?.alive(), ...pool.alive(nodeId) }, head: !!head };
}

/** The node's workers with what each runs now, for the dashboard's machine view. */
export function workerRows(pool: WorkerPool): WorkerRow[] {
  return [...pool.all].map((w) => ({
    pid: w.proc.pid!,
    state: !w.ready ? "STARTING" : w.actor ? "ACTOR" : w.task || w.lease ? "BUSY" : "IDLE",
    title: processTitle(w.proc.pid!),
    actor_id: w.actor?.id ?? null,
  }));
}
