/**
 * The node's object store: one LMDB environment (a memory-mapped file in the node's session
 * directory) shared by the node daemon, its workers and local drivers. A large value is written
 * once by the process that made it and read in place by every other process of the node:
 * `getBinaryFast` hands back a view into the map, so a local `get` copies nothing before decode.
 */
import { open, RootDatabase } from "lmdb";
import * as path from "node:path";

export class ObjectStore {
  private constructor(private readonly db: RootDatabase<Buffer, string>, readonly path: string) {}

  /** Opens (creating if needed) the store at `file`. Open after fork(), never before. */
  static open(file: string, mapSize = 1 << 30): ObjectStore {
    const db = open<Buffer, string>({
      path: file,
      encoding: "binary",
      compression: false,
      // Objects live only as long as their session: durability would cost an fsync per write.
      noSync: true,
      // Writing through the map is about 4x faster for large values (DESIGN.md).
      useWritemap: false,
      noMemInit: true,
      mapSize,
    });
    return new ObjectStore(db, path.resolve(file));
  }

  /** Writes and commits before returning, so other processes can read it at once. */
  putSync(id: string, bytes: Buffer): void {
    this.db.putSync(id, bytes);
  }

  /**
   * A view valid until the next read in this process: decode it before reading again. A process
   * that does not write keeps reading one snapshot, so a miss renews it once: the object may have
   * been committed by another process since.
   */
  view(id: string): Buffer | undefined {
    const found = this.db.getBinaryFast(id);
    if (found) return found;
    this.db.resetReadTxn();
    return this.db.getBinaryFast(id);
  }

  has(id: string): boolean {
    return this.db.doesExist(id);
  }

  remove(id: string): void {
    this.db.removeSync(id);
  }

  /** Removes every object whose id starts with `prefix` (an owner's id frees all it owned). */
  removePrefix(prefix: string): number {
    let n = 0;
    for (const key of this.db.getKeys({ start: prefix })) {
      if (!key.startsWith(prefix)) break;
      this.db.removeSync(key);
      n++;
    }
    return n;
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
