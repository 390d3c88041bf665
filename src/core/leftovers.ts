/**
 * core: what dead clusters left behind, found from their folders on this machine (core/paths.ts
 * clusterDir, where every private cluster and every CLI head keeps its registry), and removed:
 * the shape queues and actor mailboxes the registry names, the cluster's exchanges, its folder.
 * Owner inboxes and node queues are exclusive: the broker removed them with their connections.
 *
 * A cluster is dead when none of its processes runs here (node daemons and their workers carry
 * its name in WARREN_NODE) and its head's queue is gone from the broker (a head elsewhere would
 * hold it). A folder changed in the last minute is left alone unless asked for by name: a cluster
 * that is starting has a folder before it has processes. `warren cleanup` removes every dead
 * cluster's leftovers; `init()` removes those of dead private clusters in the background (a
 * private cluster's head never comes back, unlike a CLI cluster's, whose registry a new
 * `warren start --head` reloads).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type * as amqp from "amqplib";
import { RegistryStore } from "../head/store";
import { environments } from "../node/processes";
import { Topology, connectBroker, connectionName } from "../transport";
import { queueAbsent } from "../transport/queues";
import { LATEST_SESSION, WARREN_HOME, clusterDir, isPrivateCluster, latestSession, registryFile } from "./paths";

export interface Leftover {
  cluster: string;
  dir: string;
  queues: string[];
  exchanges: string[];
}

/** How long a folder must have been left unchanged before a sweep not asked for by name removes it. */
const SETTLED_MS = 60_000;

/**
 * The clusters with a folder on this machine and no process here: `only` by name, or all of them
 * (private ones only with `privateOnly`) whose folder has settled. None where there is no /proc.
 */
export function deadHere(o: { only?: string; privateOnly?: boolean } = {}): string[] {
  let names: string[];
  try {
    const kept = latestSession(); // the last private session's logs stay until the next one replaces them
    names = fs.readdirSync(WARREN_HOME)
      .filter((n) => n.startsWith("session_") && n !== path.basename(LATEST_SESSION) && n !== kept)
      .map((n) => n.slice("session_".length));
  } catch {
    return [];
  }
  const now = Date.now();
  const envs = environments();
  if (!envs) return [];
  return names.filter((cluster) => {
    if (o.only !== undefined && cluster !== o.only) return false;
    if (o.privateOnly && !isPrivateCluster(cluster)) return false;
    const changed = fs.statSync(clusterDir(cluster), { throwIfNoEntry: false })?.mtimeMs;
    if (o.only === undefined && (changed === undefined || now - changed < SETTLED_MS)) return false;
    const text = `"cluster":"${cluster}"`;
    return ![...envs.values()].some((env) => env.includes(text));
  });
}

/** What `cluster` left: the queues its registry names (if its head ran here), its exchanges, its folder. */
export async function leftoversOf(cluster: string): Promise<Leftover> {
  const topo = new Topology(cluster);
  const queues: string[] = [];
  const file = registryFile(cluster);
  if (fs.existsSync(file)) {
    const store = RegistryStore.open(file);
    const saved = store.load();
    await store.close();
    queues.push(...saved.shapes.map((s) => topo.shapeQueue(s.shape)), ...saved.actors.map((a) => topo.mailbox(a.handle)));
  }
  return { cluster, dir: clusterDir(cluster), queues, exchanges: [topo.tasks, topo.control, topo.logs] };
}

/**
 * Removes what `l` names, once the broker confirms that no head holds the cluster's head queue;
 * returns whether it did. Queues and exchanges already gone are no error.
 */
export async function removeLeftovers(conn: amqp.ChannelModel, l: Leftover): Promise<boolean> {
  if (!(await removeFromBroker(conn, l))) return false;
  fs.rmSync(l.dir, { recursive: true, force: true });
  return true;
}

/** The broker's part of removeLeftovers: the queues and exchanges, once no head holds the cluster's head queue. */
async function removeFromBroker(conn: amqp.ChannelModel, l: Leftover): Promise<boolean> {
  if (!(await queueAbsent(conn, new Topology(l.cluster).head))) return false;
  const ch = await conn.createChannel();
  ch.on("error", () => undefined);
  try {
    for (const q of l.queues) await ch.deleteQueue(q);
    for (const ex of l.exchanges) await ch.deleteExchange(ex);
  } finally {
    await ch.close().catch(() => undefined);
  }
  return true;
}

/**
 * shutdown() of a driver whose private node died (a node that stopped removed all it made, and
 * its registry file): what the registry names is removed from the broker now, while the file is
 * there to say it, and the folder kept for its logs. False if that could not be done (the broker
 * away): the file then stays for the next init()'s sweep or `warren cleanup`. Never throws.
 */
export async function removeAfterNodeDied(cluster: string, address: string): Promise<boolean> {
  // Its workers see the node's death by themselves, and one still starting would declare the
  // cluster's exchanges again on connecting: they go first (within a worker's start, under a second).
  for (const until = Date.now() + 10_000; deadHere({ only: cluster }).length === 0 && Date.now() < until; ) {
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    const conn = await connectBroker(address, connectionName(cluster, "sweep", ""));
    try {
      return await removeFromBroker(conn, await leftoversOf(cluster));
    } finally {
      await conn.close().catch(() => undefined);
    }
  } catch {
    return false;
  }
}

/** init()'s sweep: removes what the dead private clusters of this machine left; never throws. */
export async function sweepDeadPrivateClusters(address: string): Promise<void> {
  try {
    const dead = deadHere({ privateOnly: true });
    if (dead.length === 0) return;
    const conn = await connectBroker(address, connectionName("", "sweep", ""));
    try {
      for (const cluster of dead) await removeLeftovers(conn, await leftoversOf(cluster));
    } finally {
      await conn.close().catch(() => undefined);
    }
  } catch {
    // another process swept it meanwhile, or the broker went: the next init() tries again
  }
}
