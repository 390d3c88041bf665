// The binary task and result messages (wire/messages.ts): what goes in comes out.
import * as v8 from "node:v8";
import { decodeResults, encodeArgs, encodeHead, encodeResults, encodeTask, readHead, readTask, TaskHead } from "../../src/wire/messages";
import { encodeError } from "../../src/serialization";

const head: TaskHead = {
  job: "01000000", namespace: "ns", fn: { module: "/m.ts", index: 2, name: "f" }, name: "f",
  numReturns: 2, maxRetries: 3, retryExceptions: true, actor: { id: "a1", method: "m" },
};
const id = "0123456789abcdef0000000000000001";

test("a task message carries its head, id, arguments and refs", () => {
  const args = [1, "two", { three: [3] }, new Map([[4, 4n]])];
  const resolved = { 1: { inline: Buffer.from([9]) } };
  const spec = readTask(encodeTask(encodeHead(head), id, encodeArgs(args, "f"), { refArgs: [1], resolved }));
  expect(spec).toEqual({ ...head, id, args, refArgs: [1], resolved, markers: false });
});

test("a call without arguments or refs carries none", () => {
  const body = encodeTask(encodeHead(head), id, encodeArgs([], "f"));
  expect(body.length).toBe(1 + 2 + encodeHead(head).length + 1 + id.length + 4);
  const spec = readTask(body);
  expect(spec.args).toEqual([]);
  expect(spec.refArgs).toEqual([]);
  expect(spec.resolved).toEqual({});
});

test("arguments holding ref markers are flagged for revival", () => {
  const spec = readTask(encodeTask(encodeHead(head), id, encodeArgs([{ __warrenRef: "ab" }], "f")));
  expect(spec.markers).toBe(true);
});

test("a head is decoded once per process and shared by the calls that carry it", () => {
  const bytes = encodeHead({ ...head, name: "shared" });
  const a = readTask(encodeTask(bytes, id, encodeArgs([1], "f")));
  const b = readTask(encodeTask(bytes, id.replace(/1$/, "2"), encodeArgs([2], "f")));
  expect(a.fn).toBe(b.fn); // the same object: decoded once
  expect(readHead(encodeTask(bytes, id, encodeArgs([], "f")))).toEqual({ ...head, name: "shared" });
});

test("an argument that cannot cross is named", () => {
  expect(() => encodeArgs([1, () => 2], "f")).toThrow(/argument 1 of f cannot be serialized/);
});

test("a message of another format is refused with a clear error", () => {
  expect(() => readTask(v8.serialize({ id }))).toThrow(/unknown format/);
  expect(() => decodeResults(v8.serialize([]))).toThrow(/unknown format/);
});

test("results carry inline values, stored locations and errors, several to a message", () => {
  const err = encodeError(new TypeError("boom"));
  const results = [
    { task: id, returns: [{ inline: Buffer.from([1, 2, 3]) }, { node: "n".repeat(40), size: 123456789 }, { error: err }] },
    { task: id.replace(/1$/, "2"), error: err },
    { task: id.replace(/1$/, "3"), returns: [] },
  ];
  expect(decodeResults(encodeResults(results))).toEqual(results);
});

test("an inline value decoded from a result is a copy, not a view of the message", () => {
  const msg = encodeResults([{ task: id, returns: [{ inline: Buffer.from([7]) }] }]);
  const [r] = decodeResults(msg);
  msg.fill(0);
  expect([...(r.returns![0] as { inline: Buffer }).inline]).toEqual([7]);
});

test("a result names the borrowed refs its worker still holds, with or without an error", () => {
  const held = { by: "b".repeat(16), ids: ["1".repeat(40), "2".repeat(40)] };
  const results = [
    { task: id, returns: [{ inline: Buffer.from([1]) }], held },
    { task: id, error: { name: "Error", message: "m", stack: "", fields: {} }, held: { by: held.by, ids: [held.ids[0]] } },
    { task: id, returns: [] },
  ];
  expect(decodeResults(encodeResults(results))).toStrictEqual(results);
});
