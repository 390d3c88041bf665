/**
 * The node's object store: one LMDB environment (a memory-mapped file in the node's session
 * directory) shared by the node daemon, its workers and local drivers. A large value is written
 * once by the process that made it and read in place by every other process of the node:
 * `getBinaryFast` hands back a view into the map, so a local `get` copies nothing before decode.
 *
 * Values of FILE_MIN bytes or more are files beside the map instead (`<store>.large/<id>`),
 * written by one write and renamed into place. LMDB without a writable map copies a value into
 * its own pages and then writes those (0.6 GB/s for 256 MiB here, against 4 GB/s for one file
 * write), and with `useWritemap` it tripped an assertion in `mdb_freelist_save` when large values
 * were freed, even in one process.
 *
 * A freed file is kept as a spare (`spare-*`, up to SPARES_MAX bytes in all) and the next large
 * value is written over it: its pages are already in the page cache, and a write into them is
 * about 1.5x one that must first allocate them (5.5 against 3.7 GB/s for 256 MiB here).
 */
import { open, RootDatabase } from "lmdb";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { byteLength, joined } from "../serialization";

/** Values from this size go to a file of their own beside the LMDB map. */
const FILE_MIN = 8 * 1024 * 1024;
/** Freed large files kept as spares, at most this many bytes in all. */
const SPARES_MAX = 1024 * 1024 * 1024;
const SPARE = "spare-";
const PARTIAL = ".partial";
/** Names spare files uniquely within this process. */
let sparesMade = 0;

/** See ObjectStore.writer. */
export interface StoreWriter {
  /** Writes `part` at offset `at`; a write into the map waits for commit. */
  write(part: Buffer, at: number): Promise<void>;
  /** Once every write is done: the value `whole` (all the parts) becomes readable. */
  commit(whole: Buffer): Promise<void>;
  abort(): void;
}

const writeAt = promisify(fs.write);

async function writeAll(fd: number, part: Buffer, at: number): Promise<void> {
  for (let done = 0; done < part.length; ) done += (await writeAt(fd, part, done, part.length - done, at + done)).bytesWritten;
}

export class ObjectStore {
  private readonly largeDir: string;

  private constructor(private readonly db: RootDatabase<Buffer, string>, readonly path: string) {
    this.largeDir = `${path}.large`;
    fs.mkdirSync(this.largeDir, { recursive: true });
  }

  /** Opens (creating if needed) the store at `file`. Open after fork(), never before. */
  static open(file: string, mapSize = 1 << 30): ObjectStore {
    const db = open<Buffer, string>({
      path: file,
      encoding: "binary",
      compression: false,
      // Objects live only as long as their session: durability would cost an fsync per write.
      noSync: true,
      useWritemap: false, // see above
      noMemInit: true,
      mapSize,
    });
    return new ObjectStore(db, path.resolve(file));
  }

  /** Writes and commits before returning, so other processes can read it at once. */
  putSync(id: string, parts: Buffer[]): void {
    if (byteLength(parts) < FILE_MIN) return void this.db.putSync(id, joined(parts));
    const { fd, commit, abort } = this.partial(id);
    let size = 0;
    try {
      for (const part of parts) {
        for (let at = 0; at < part.length; ) at += fs.writeSync(fd, part, at);
        size += part.length;
      }
    } catch (err) {
      abort();
      throw err;
    }
    commit(size);
  }

  /**
   * A value of `size` bytes written in pieces as they arrive (from another node), readable once
   * committed: readers see the whole value or none of it. A value for the map is put whole, at
   * once, when commit is called; a file when its writes are done. Removing the value meanwhile
   * (remove) makes the commit fail instead of leaving a copy nobody frees.
   */
  writer(id: string, size: number): StoreWriter {
    if (size < FILE_MIN) return { write: async () => undefined, commit: async (whole) => void this.db.putSync(id, whole), abort: () => undefined };
    const { fd, commit, abort } = this.partial(id);
    const writes: Promise<void>[] = [];
    return {
      write: (part, at) => {
        const done = writeAll(fd, part, at);
        writes.push(done);
        return done;
      },
      commit: async () => {
        try {
          await Promise.all(writes);
        } catch (err) {
          abort();
          throw err;
        }
        commit(size);
      },
      abort: () => void Promise.allSettled(writes).then(abort),
    };
  }

  /** A file for value `id` to be written and then renamed into place (over a spare if there is one). */
  private partial(id: string): { fd: number; commit(size: number): void; abort(): void } {
    const file = this.file(id);
    const partial = `${file}.${process.pid}${PARTIAL}`;
    const fd = fs.openSync(partial, this.takeSpare(partial) ? "r+" : "w");
    return {
      fd,
      commit: (size) => {
        try {
          fs.ftruncateSync(fd, size); // a spare may have been longer
        } finally {
          fs.closeSync(fd);
        }
        fs.renameSync(partial, file);
      },
      abort: () => {
        fs.closeSync(fd);
        fs.rmSync(partial, { force: true });
      },
    };
  }

  /** Moves a spare file (any process's) to `to`; false if there is none. */
  private takeSpare(to: string): boolean {
    for (const name of fs.readdirSync(this.largeDir)) {
      if (!name.startsWith(SPARE)) continue;
      try {
        fs.renameSync(path.join(this.largeDir, name), to);
        return true;
      } catch {
        // another process took it first
      }
    }
    return false;
  }

  /** Keeps a freed file as a spare while the spares hold less than SPARES_MAX, else deletes it. */
  private retire(file: string): void {
    const size = fs.statSync(file, { throwIfNoEntry: false })?.size;
    if (size === undefined) return this.removePartials(path.basename(file)); // in the map, or still being written
    let kept = 0;
    for (const name of fs.readdirSync(this.largeDir)) {
      if (name.startsWith(SPARE)) kept += fs.statSync(path.join(this.largeDir, name), { throwIfNoEntry: false })?.size ?? 0;
    }
    if (kept + size > SPARES_MAX) return fs.rmSync(file, { force: true });
    try {
      fs.renameSync(file, path.join(this.largeDir, `${SPARE}${process.pid}-${sparesMade++}`));
    } catch {
      // removed meanwhile
    }
  }

  /** Removes the files value `id` is being written to, so that no commit follows its removal. */
  private removePartials(id: string): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.largeDir);
    } catch {
      return; // the store's folder is gone
    }
    for (const name of names) if (name.startsWith(`${id}.`) && name.endsWith(PARTIAL)) fs.rmSync(path.join(this.largeDir, name), { force: true });
  }

  private file(id: string): string {
    return path.join(this.largeDir, id);
  }

  /** `length` bytes of a value from `offset` (a chunk for another node), valid until the next read. */
  chunk(id: string, offset: number, length: number): Buffer | undefined {
    const small = this.mapped(id);
    if (small) return small.subarray(offset, offset + length);
    let fd: number;
    try {
      fd = fs.openSync(this.file(id), "r");
    } catch {
      return undefined;
    }
    try {
      const buf = Buffer.allocUnsafe(length);
      return buf.subarray(0, fs.readSync(fd, buf, 0, length, offset));
    } finally {
      fs.closeSync(fd);
    }
  }

  /** What a node sends another: a copy of a value in the map, or an open file (the caller closes it). */
  source(id: string): { bytes: Buffer } | { fd: number; size: number } | undefined {
    const small = this.mapped(id);
    if (small) return { bytes: Buffer.from(small.subarray(0, small.length)) }; // lmdb's view reports its whole buffer to Buffer.from
    try {
      const fd = fs.openSync(this.file(id), "r");
      return { fd, size: fs.fstatSync(fd).size };
    } catch {
      return undefined;
    }
  }

  /**
   * A view valid until the next read in this process: decode it before reading again. A process
   * that does not write keeps reading one snapshot, so a miss renews it once: the object may have
   * been committed by another process since.
   */
  view(id: string): Buffer | undefined {
    const found = this.mapped(id);
    if (found) return found;
    try {
      return fs.readFileSync(this.file(id));
    } catch {
      return undefined;
    }
  }

  private mapped(id: string): Buffer | undefined {
    const found = this.db.getBinaryFast(id);
    if (found) return found;
    this.db.resetReadTxn();
    return this.db.getBinaryFast(id);
  }

  remove(id: string): void {
    this.db.removeSync(id);
    this.retire(this.file(id));
  }

  /** Removes every object whose id starts with `prefix` (an owner's id frees all it owned). */
  removePrefix(prefix: string): number {
    let n = 0;
    for (const key of this.db.getKeys({ start: prefix })) {
      if (!key.startsWith(prefix)) break;
      this.db.removeSync(key);
      n++;
    }
    for (const name of fs.readdirSync(this.largeDir)) {
      if (!name.startsWith(prefix)) continue;
      fs.rmSync(this.file(name), { force: true });
      n++;
    }
    return n;
  }

  /** What the store holds now: its objects, and their bytes (LMDB's pages in use, plus the large values' files). */
  stats(): { objects: number; bytes: number } {
    this.db.resetReadTxn(); // see what other processes have committed since
    const s = this.db.getStats() as { pageSize: number; entryCount: number; treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number };
    let objects = s.entryCount;
    let bytes = (s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages) * s.pageSize;
    for (const name of fs.readdirSync(this.largeDir)) {
      if (name.startsWith(SPARE) || name.endsWith(".partial")) continue;
      objects++;
      bytes += fs.statSync(path.join(this.largeDir, name), { throwIfNoEntry: false })?.size ?? 0;
    }
    return { objects, bytes };
  }

  /** How many objects it holds (spare files are none). */
  count(): number {
    this.db.resetReadTxn(); // other processes may have written or removed since this one's last read
    return this.db.getKeysCount() + fs.readdirSync(this.largeDir).filter((name) => !name.startsWith(SPARE)).length;
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
