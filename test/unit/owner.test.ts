// The owner's table: readiness callbacks, taking them back, and what may be freed.
import { OwnerTable } from "../../src/objects/owner";

test("onReady calls at once when ready, later when pending, and not after it is taken back", () => {
  const t = new OwnerTable();
  t.pending("a");
  const calls: string[] = [];
  const offFirst = t.onReady("a", () => calls.push("first"));
  const offSecond = t.onReady("a", () => calls.push("second"));
  expect(offFirst).toBeInstanceOf(Function);
  (offSecond as () => void)();
  expect(t.resolve("a", { inline: Buffer.from("x") })).toBe(true);
  expect(calls).toEqual(["first"]);
  t.onReady("a", () => calls.push("now"));
  expect(calls).toEqual(["first", "now"]);
  expect(t.onReady("unknown", () => undefined)).toBe(false);
});

test("a late duplicate result does not overwrite the first", () => {
  const t = new OwnerTable();
  t.pending("a");
  t.resolve("a", { inline: Buffer.from("1") });
  expect(t.resolve("a", { inline: Buffer.from("2") })).toBe(false);
  expect((t.peek("a") as { inline: Buffer }).inline.toString()).toBe("1");
});

test("an object is forgotten once its last local ref, task pin and borrower are gone, never while one is left", () => {
  const t = new OwnerTable();
  t.ready("a", { inline: Buffer.from("a") });
  t.addLocal("a");
  t.pin("a"); // a task carries it
  expect(t.dropLocal("a")).toBe(false); // the driver dropped its ref; the task still runs
  t.addBorrower("a", "w1"); // its worker reported keeping it, then the task ended
  t.addBorrower("a", "w1");
  expect(t.unpin("a")).toBe(false);
  expect(t.release("a", "w2")).toBe(false); // not a borrower of it
  expect(t.has("a")).toBe(true);
  expect(t.release("a", "w1")).toEqual({ inline: Buffer.from("a") });
  expect(t.has("a")).toBe(false);
  expect(t.release("a", "w1")).toBe(false); // a late duplicate
});

test("an escaped object, or one awaited, is kept however its counts fall", () => {
  const t = new OwnerTable();
  t.ready("sent", { inline: Buffer.from("s") });
  t.addLocal("sent");
  t.markEscaped("sent");
  expect(t.dropLocal("sent")).toBe(false);
  t.pending("awaited");
  t.addLocal("awaited");
  const off = t.onReady("awaited", () => undefined) as () => void;
  expect(t.dropLocal("awaited")).toBe(false);
  off();
  t.pin("awaited");
  expect(t.unpin("awaited")).toBeUndefined(); // pending: no value to free, but forgotten
  expect([t.has("sent"), t.has("awaited")]).toEqual([true, false]);
  expect(t.rows()[0]).toMatchObject({ object_id: "sent", reference_type: "CAPTURED_IN_OBJECT" });
});
