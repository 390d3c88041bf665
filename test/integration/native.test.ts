// Compiled code as remote functions (warren.wasm): AssemblyScript kernels compiled by asc, shipped
// through the object store, run on workers against the real broker and LMDB.
import * as fs from "node:fs";
import * as warren from "warren";
import { compileAssemblyScript } from "../../examples/native/build";
import { compiles } from "../fixtures/native";
import { captureStdout } from "../helpers";

let kernelsFile: string;
let forbiddenFile: string;

beforeAll(async () => {
  kernelsFile = compileAssemblyScript("kernels");
  forbiddenFile = compileAssemblyScript("forbidden");
  await warren.init({ numCpus: 1 });
});

afterAll(() => warren.shutdown());

test("a module's exports are remote functions, with .remote() and .options()", async () => {
  const k = warren.wasm(kernelsFile, { imports: ["env.abort"] });
  expect(Object.keys(k).sort()).toEqual(["add", "dot", "fib"]);
  expect(await warren.get(k.add.remote(2, 40))).toBe(42);
  expect(await warren.get(k.fib.options({ name: "wasm_fib" }).remote(50))).toBe(12586269025);
  expect(() => k.add.options({ numCpus: -1 })).toThrow(warren.OptionsError);
});

test("a worker compiles a module once, however often its exports run", async () => {
  const k = warren.wasm(fs.readFileSync(kernelsFile), { imports: ["env.abort"] });
  const results = await warren.get([k.add.remote(1, 1), k.fib.remote(10), k.add.remote(2, 2)]);
  expect(results).toEqual([2, 55, 4]);
  const [, n] = await warren.get(compiles.remote());
  expect(n).toBe(1);
});

test("Float64Arrays above the inline limit reach the kernel from the object store, each intact (not a view lmdb reuses)", async () => {
  const k = warren.wasm(kernelsFile, { imports: ["env.abort"] });
  const n = 1_000_000; // 8 MB each, far over the 100 KiB inline limit: read from the node's LMDB
  const a = new Float64Array(n).map((_, i) => i % 7);
  const b = new Float64Array(n).map((_, i) => 1 / ((i % 5) + 1));
  let expected = 0;
  for (let i = 0; i < n; i++) expected += a[i] * b[i];
  expect(await warren.get(k.dot.remote(warren.put(a), warren.put(b)))).toBeCloseTo(expected, 6);
});

test("granted imports work: env.log prints with the task's (name pid=N) prefix, Math.sqrt computes", async () => {
  const m = warren.wasm(compileAssemblyScript("logger"), { imports: ["env.log", "Math.sqrt"] });
  let value = 0;
  const out = await captureStdout(async () => {
    value = await warren.get(m.hypot.remote(3, 4));
  });
  expect(value).toBe(5);
  expect(out).toMatch(/^\(hypot pid=\d+\) 5$/m);
});

test("a module importing what is not granted or not on the allow-list is refused at warren.wasm()", () => {
  expect(() => warren.wasm(forbiddenFile)).toThrow(/imports env\.readFile, which is not granted.*allow-list: env\.memory, env\.log/);
  expect(() => warren.wasm(forbiddenFile, { imports: ["env.readFile"] })).toThrow(/env\.readFile.*not on the allow-list/);
  expect(() => warren.wasm(kernelsFile)).toThrow(/imports env\.abort, which is not granted/);
});

test("bad input: not bytes, no such file, not WebAssembly", () => {
  expect(() => warren.wasm(42 as unknown as Uint8Array)).toThrow(/takes a \.wasm file's path, a Uint8Array\/Buffer or an ArrayBuffer; got number/);
  expect(() => warren.wasm("/no/such/file.wasm")).toThrow(/cannot read \/no\/such\/file\.wasm/);
  expect(() => warren.wasm(Buffer.from("not wasm"))).toThrow(/is not valid WebAssembly/);
});
