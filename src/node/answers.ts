/** What a node answers other processes on its control queue, besides commands and objects (object-server.ts): state queries. */
import type { HeadServer } from "../head/server";
import type { StateAnswer } from "../wire/kinds";
import type { WorkerPool } from "./worker-pool";

/**
 * A state query (transport/rpc.ts gather): a node has no rows of its own, but says whom the
 * asker should wait for: its ready workers and, on the head node, the alive nodes and drivers.
 */
export function stateAnswer(nodeId: string, pool: WorkerPool, head: HeadServer | undefined): StateAnswer {
  return { from: `node:${nodeId}`, rows: [], vouch: { ...head?.alive(), ...pool.alive(nodeId) }, head: !!head };
}
