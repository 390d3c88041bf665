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

test("only objects no message carried and nobody waits for are freed early", () => {
  const t = new OwnerTable();
  t.ready("private", { inline: Buffer.from("p") });
  t.ready("sent", { inline: Buffer.from("s") });
  t.markEscaped("sent");
  t.pending("awaited");
  const off = t.onReady("awaited", () => undefined) as () => void;
  expect(t.releaseIfPrivate("private")).toEqual({ inline: Buffer.from("p") });
  expect(t.releaseIfPrivate("sent")).toBe(false);
  expect(t.releaseIfPrivate("awaited")).toBe(false);
  off();
  expect(t.releaseIfPrivate("awaited")).toBeUndefined();
  expect(t.size).toBe(1);
});
