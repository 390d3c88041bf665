// The borrower's table (objects/borrowed.ts): what a call's result reports as held, and what is released when.
import { BorrowTable } from "../../src/objects/borrowed";

test("a loan is held while a ref of it lives, and released once, after its last ref is collected", () => {
  const t = new BorrowTable();
  t.add("x", "owner1");
  t.add("x", "owner1"); // two refs of it (two occurrences in the arguments)
  t.add("y", "owner2");
  expect(t.held(["x", "y", "unknown"])).toEqual(["x", "y"]);
  t.drop("x");
  expect(t.takeReleases()).toEqual(new Map());
  t.drop("x");
  t.drop("y");
  expect(t.held(["x", "y"])).toEqual([]);
  expect(t.takeReleases()).toEqual(new Map([["owner1", ["x"]], ["owner2", ["y"]]]));
  expect(t.size).toBe(0);
  expect(t.takeReleases()).toEqual(new Map());
});

test("a loan received again before its release goes out is not released", () => {
  const t = new BorrowTable();
  t.add("x", "o");
  expect(t.outstanding).toBe(true);
  t.drop("x");
  expect(t.outstanding).toBe(false); // nothing left to wait for a GC for
  t.add("x", "o"); // another call gave it again; its result will report it held
  expect(t.held(["x"])).toEqual(["x"]);
  expect(t.takeReleases()).toEqual(new Map());
  t.drop("x");
  expect(t.takeReleases()).toEqual(new Map([["o", ["x"]]]));
});

test("a loan passed on into a message is held for good, never released", () => {
  const t = new BorrowTable();
  t.add("x", "o");
  expect(t.passOn("x")).toBe(true);
  expect(t.passOn("not-a-loan")).toBe(false);
  t.drop("x");
  expect(t.outstanding).toBe(false);
  expect(t.held(["x"])).toEqual(["x"]);
  expect(t.takeReleases()).toEqual(new Map());
  expect(t.size).toBe(1);
});
