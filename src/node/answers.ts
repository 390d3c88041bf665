/**
 * What a node answers other processes on its control queue, besides commands and objects
 * (object-server.ts): state queries, and its workers.
 */
import type { HeadServer } from "../head/server";
import type { StateAnswer } from "../wire/kinds";
import type { WorkerRow } from "../wire/head";
import type { WorkerPool } from "./worker-pool";
import { processTitle } from "./processes";

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
    state: !w.ready ? "STARTING" : w.actor ? "ACTOR" : w.host ? "ACTOR_HOST" : w.task || w.lease ? "BUSY" : "IDLE",
    title: processTitle(w.proc.pid!),
    actor_id: w.actor?.id ?? null,
  }));
}
