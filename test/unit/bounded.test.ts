// BoundedMap and BoundedSet keep only their newest keys, evicting the oldest first.
import { BoundedMap, BoundedSet } from "../../src/bounded";

test("a BoundedMap keeps the newest `limit` keys and evicts in insertion order", () => {
  const m = new BoundedMap<number, string>(3);
  for (let i = 1; i <= 5; i++) m.set(i, `v${i}`);
  expect([...m.keys()]).toEqual([3, 4, 5]);
  m.set(4, "again"); // an update is not a new key: nothing is evicted
  expect(m.size).toBe(3);
  expect(m.get(4)).toBe("again");
  m.set(6, "v6");
  expect([...m.keys()]).toEqual([4, 5, 6]);
});

test("a BoundedMap tells of each entry it evicts, not of those deleted", () => {
  const gone: [number, string][] = [];
  const m = new BoundedMap<number, string>(2, (k, v) => gone.push([k, v]));
  m.set(1, "a").set(2, "b");
  m.delete(2);
  m.set(3, "c").set(4, "d");
  expect(gone).toEqual([[1, "a"]]);
  expect([...m.keys()]).toEqual([3, 4]);
});

test("a BoundedSet keeps the newest `limit` keys", () => {
  const s = new BoundedSet<string>(2);
  for (const k of ["a", "b", "a", "c"]) s.add(k);
  expect([...s]).toEqual(["b", "c"]);
});
