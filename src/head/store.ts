/**
 * head: the registry's file (Ray's GCS storage), so a head started again for the cluster on this
 * machine knows the cluster it knew. One LMDB database, a record per actor, node and shape,
 * keyed by kind and id (`actor/<id>`, `node/<id>`, `shape/<shape>`, `job/<id>`), and one of the cluster's
 * settings (`cluster`), its value the record as plain data (v8 serialization, as on the wire). A record is written whole each time it changes,
 * asynchronously: lmdb gathers the puts of one turn into one transaction, and no request waits
 * on the disk. What changes every heartbeat (free resources, last seen, acked tasks) is never
 * written: a node's record changes only when it registers and when it dies. An actor's record is
 * deleted when the registry drops it (HEAD_DEFAULTS.deadActorsKept).
 */
import { open, RootDatabase } from "lmdb";
import * as fs from "node:fs";
import * as path from "node:path";
import * as v8 from "node:v8";
import type { Snapshot } from "xstate";
import type { HandleInfo } from "../wire/descriptors";
import type { ActorCreationMessage, JobRow, NodeInfo } from "../wire/head";

/** What the head knows of an actor besides its lifecycle: its registration and creation message. */
export interface ActorFields {
  handle: HandleInfo;
  owner: string;
  job: string;
  creation?: ActorCreationMessage;
  name?: string;
  namespace: string;
  detached: boolean;
}

/** An actor as saved, its lifecycle as an xstate persisted snapshot. */
export interface SavedActor extends ActorFields {
  lifecycle: Snapshot<unknown>;
}

/** A node as saved: what it registered with, and whether it has died. */
export interface SavedNode {
  info: NodeInfo;
  lifecycle: Snapshot<unknown>;
}

/** A shape as saved, with when it was first announced. */
export interface SavedShape {
  shape: string;
  firstSeen: number;
}

export interface SavedRegistry {
  actors: SavedActor[];
  nodes: SavedNode[];
  shapes: SavedShape[];
  jobs: JobRow[];
}

/** What the head decided for the whole cluster when it was first started. */
export interface SavedCluster {
  durable: boolean;
}

const CLUSTER = "cluster";
const ACTOR = "actor/";
const NODE = "node/";
const SHAPE = "shape/";
const JOB = "job/";

export class RegistryStore {
  private constructor(private readonly db: RootDatabase<Buffer, string>, readonly path: string) {}

  /** Opens (creating if needed) the registry's file, core/paths.ts registryFile. */
  static open(file: string): RegistryStore {
    const db = open<Buffer, string>({
      path: file,
      encoding: "binary",
      // It must outlive the head process, not the machine: a session does not survive a reboot.
      noSync: true,
    });
    return new RegistryStore(db, path.resolve(file));
  }

  /** The cluster's settings, if a head saved them before (a head restarted keeps them). */
  cluster(): SavedCluster | undefined {
    const v = this.db.get(CLUSTER);
    return v === undefined ? undefined : (v8.deserialize(v) as SavedCluster);
  }

  putCluster(cluster: SavedCluster): void {
    this.put(CLUSTER, cluster);
  }

  putActor(actor: SavedActor): void {
    this.put(ACTOR + actor.handle.id, actor);
  }

  /** An actor the registry no longer keeps (dead, and among the oldest dead). */
  deleteActor(id: string): void {
    this.written(ACTOR + id, this.db.remove(ACTOR + id));
  }

  putNode(node: SavedNode): void {
    this.put(NODE + node.info.nodeId, node);
  }

  putJob(job: JobRow): void {
    this.put(JOB + job.job_id, job);
  }

  putShape(shape: SavedShape): void {
    this.put(SHAPE + shape.shape, shape);
  }

  private put(key: string, value: unknown): void {
    this.written(key, this.db.put(key, v8.serialize(value)));
  }

  private written(key: string, write: Promise<boolean>): void {
    write.then(undefined, (err) => console.error(`warren head: could not save ${key} to ${this.path}:`, err));
  }

  /** Every record saved, read at once (a synchronous read of the map). */
  load(): SavedRegistry {
    return { actors: this.records(ACTOR), nodes: this.records(NODE), shapes: this.records(SHAPE), jobs: this.records(JOB) };
  }

  private records<T>(prefix: string): T[] {
    const out: T[] = [];
    for (const { key, value } of this.db.getRange({ start: prefix })) {
      if (!key.startsWith(prefix)) break;
      out.push(v8.deserialize(value) as T);
    }
    return out;
  }

  /** Removes a registry's files (its cluster has ended: a head started later starts a new one). */
  static remove(file: string): void {
    for (const f of [file, `${file}-lock`]) fs.rmSync(f, { force: true });
  }

  /** Waits for the writes still pending, then closes the file. */
  async close(): Promise<void> {
    await this.db.committed;
    await this.db.close();
  }
}
