/**
 * What a node answers other processes on its control queue, besides commands: chunks of the
 * objects in its store (processes on other nodes read them so), and state queries.
 */
import { WarrenError } from "../errors";
import type { HeadServer } from "../head/server";
import type { ObjectStore } from "../objects/store";
import { encodeError } from "../serialization";
import type { RpcReply, StateAnswer } from "../wire/kinds";
import type { NodeRequests, PayloadOf, ReplyOf } from "../wire/head";
import type { WorkerPool } from "./worker-pool";

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
