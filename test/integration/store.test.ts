// The object store (objects/store.ts) on real LMDB files: large values as files beside the map,
// and a freed file written over by the next large value.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ObjectStore } from "../../src/objects/store";

const MiB = 1024 * 1024;
let dir: string;
let store: ObjectStore;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "warren-store-"));
  store = ObjectStore.open(path.join(dir, "objects.lmdb"));
});
afterEach(async () => {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test("a freed large value's file is kept as a spare, and the next large value is written over it", () => {
  const large = `${store.path}.large`;
  store.putSync("a", [Buffer.alloc(10 * MiB, 1)]);
  const inode = fs.statSync(path.join(large, "a")).ino;
  store.remove("a");
  expect(store.view("a")).toBeUndefined();
  expect(fs.readdirSync(large)).toEqual([expect.stringMatching(/^spare-/)]);

  // Shorter than the spare, in two parts: the file is cut to the new value's length.
  const b = [Buffer.alloc(8, 2), Buffer.alloc(9 * MiB, 3)];
  store.putSync("b", b);
  expect(fs.readdirSync(large)).toEqual(["b"]);
  expect(fs.statSync(path.join(large, "b")).ino).toBe(inode);
  expect(Buffer.compare(store.view("b")!, Buffer.concat(b))).toBe(0);
});

test("without a spare a large value gets a new file; small values stay in LMDB", () => {
  store.putSync("small", [Buffer.alloc(100, 4)]);
  store.putSync("big", [Buffer.alloc(8 * MiB, 5)]);
  expect(fs.readdirSync(`${store.path}.large`)).toEqual(["big"]);
  expect(store.view("small")?.length).toBe(100);
  expect(Buffer.compare(store.view("big")!, Buffer.alloc(8 * MiB, 5))).toBe(0);
});

test("a value written in pieces is readable only once committed; removed before that, it never appears", async () => {
  const large = `${store.path}.large`;
  const value = Buffer.alloc(12 * MiB, 5);
  const w = store.writer("p", value.length);
  await w.write(value.subarray(6 * MiB), 6 * MiB); // out of order, as pieces may be
  expect(store.view("p")).toBeUndefined();
  await w.write(value.subarray(0, 6 * MiB), 0);
  await w.commit(value);
  expect(store.view("p")!.equals(value)).toBe(true);

  const small = store.writer("s", MiB); // a map value: put whole on commit
  await small.commit(Buffer.alloc(MiB, 6));
  expect(store.view("s")!.subarray(0).equals(Buffer.alloc(MiB, 6))).toBe(true); // subarray: lmdb's view reports its whole buffer to equals

  // Freed while its copy is still being written (the owner freed it): the commit fails, nothing stays.
  const late = store.writer("q", value.length);
  await late.write(value, 0);
  store.remove("q");
  await expect(late.commit(value)).rejects.toThrow(/ENOENT/);
  expect(store.view("q")).toBeUndefined();
  expect(fs.readdirSync(large).filter((n) => n.startsWith("q"))).toEqual([]);
});
