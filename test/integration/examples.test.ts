// Every example prints what the seed page shows. Runs them as `npm run examples -- NAME` would.
import { spawnSync } from "node:child_process";
import * as path from "node:path";

function run(name: string): string {
  const r = spawnSync(process.execPath, [path.join(__dirname, "..", "..", "examples", "run.js"), name], { encoding: "utf8", timeout: 60_000 });
  expect(r.stderr).not.toMatch(/Error/);
  expect(r.status).toBe(0);
  return r.stdout;
}

test("nested tasks: g returns four ObjectRefs, h returns [1, 1, 1, 1]", () => {
  const out = run("nested_tasks");
  expect(out.match(/ObjectRef\([0-9a-f]{40}\)/g)).toHaveLength(4);
  expect(out).toContain("[ 1, 1, 1, 1 ]");
});

test("dynamic options: numReturns and a task name", () => {
  const out = run("dynamic_options");
  expect(out).toContain("numReturns: 2 -> [ 0, 1 ]");
  expect(out).toContain("ran as warren::special_f and returned 4");
});

test("FileLock: three writers, three whole lines", () => {
  expect(run("file_lock")).toMatch(/^hi there!\nhi there!\nhi there!\n/m);
});

test("SignalActor: ready, set, then four waiting tasks go, each in its own worker", () => {
  const out = run("signal_actor");
  const ready = out.indexOf("ready...");
  const set = out.indexOf("set..");
  const gos = [...out.matchAll(/^\(wait_and_go pid=(\d+)\) go!$/gm)];
  expect(ready).toBeGreaterThanOrEqual(0);
  expect(set).toBeGreaterThan(ready);
  expect(gos).toHaveLength(4);
  expect(gos.every((m) => m.index! > set)).toBe(true);
  expect(new Set(gos.map((m) => m[1])).size).toBe(4);
});

test("Queue: two consumers each get work", () => {
  const lines = [...run("queue").matchAll(/^\(consumer pid=\d+\) got work (\d+)$/gm)].map((m) => Number(m[1]));
  expect(lines.sort()).toEqual([0, 1]);
});

test("actor counter", () => {
  expect(run("actor_counter")).toContain("[ 1, 2, 3, 4, 5 ]");
});

test("dynamic resources: three Counters with per-instance CPUs and custom resources hold all of them", () => {
  const out = run("dynamic_resources");
  expect(out).toContain("declared resources: numCpus: 6, resources: { Custom1: 1, Custom2: 1, Custom3: 1 }");
  expect(out).toContain("cluster resources: { CPU: 6, Custom1: 1, Custom2: 1, Custom3: 1 }");
  expect(out).toContain("available before the actors: { CPU: 6, Custom1: 1, Custom2: 1, Custom3: 1 }");
  expect(out).toContain("a1, a2, a3 increment -> [ 1, 1, 1 ]");
  expect(out).toContain("a2 increment again -> 2");
  expect(out).toContain("available while the actors are alive: {}\n");
  expect(out).toMatch(/^still free: only memory, node:[\d.]+, object_store_memory$/m);
});

test("GPU ids: a task without numGpus gets none, one with numGpus: 1 gets one of the two declared", () => {
  const out = run("gpu_ids");
  expect(out).toContain("this example declares numGpus: 2");
  expect(out).toContain("cluster GPU: 2");
  // A task without GPUs keeps the CUDA_VISIBLE_DEVICES the cluster was started with (this test's).
  expect(out).toContain(`g.remote() -> getGpuIds(): [] CUDA_VISIBLE_DEVICES: ${process.env.CUDA_VISIBLE_DEVICES}\n`);
  const m = out.match(/^g\.options\(\{ numCpus: 1, numGpus: 1 \}\)\.remote\(\) -> getGpuIds\(\): \[ ([01]) \] CUDA_VISIBLE_DEVICES: (\d+)$/m);
  expect(m).not.toBeNull();
  expect(m![2]).toBe(m![1]);
});

test("accelerator types: the V100 task runs holding accelerator_type:V100: 0.001; a T4 task does not run", () => {
  const out = run("accelerator_types");
  expect(out).toContain('this example declares a V100: numGpus: 1, resources: { "accelerator_type:V100": 1 }');
  expect(out).toContain("This function was run on a node with a Tesla V100 GPU\n");
  expect(out).toContain("resources the task held: { CPU: 1, GPU: 1, 'accelerator_type:V100': 0.001 }");
  expect(out).toContain("with acceleratorType: T4 it does not run here: GetTimeoutError");
});

test("circular dependency: g (1 CPU, 1 GPU) waits for f on a 1-CPU node and finishes", () => {
  const out = run("circular_dependency");
  expect(out).toContain("this example declares numCpus: 1, numGpus: 1");
  expect(out).toContain("g() -> 1\n");
  expect(out).toContain("f held: { CPU: 1 } while g held: { CPU: 1, GPU: 1 } and GPU ids [ 0 ]");
  expect(out).toContain("free on the node while f ran: { CPU: 0, GPU: 0 }");
  expect(out).toContain("g released its CPU while blocked in get (so f could run on it) and kept its GPU");
});

test("cluster state: one alive head node with Ray's fields, its resources as the cluster's", () => {
  const out = run("cluster_state");
  for (const field of ["NodeID", "NodeManagerAddress", "NodeManagerHostname", "ObjectStorePath", "MetricsExportPort"]) {
    expect(out).toMatch(new RegExp(`^    ${field}: `, "m"));
  }
  expect(out).toMatch(/^    NodeID: '[0-9a-f]+',$/m);
  expect(out).toMatch(/^    Alive: true,$/m);
  expect(out).toMatch(/^    IsHead: true,?$/m);
  expect(out).toMatch(/^    Resources: \{\n      CPU: \d+,/m);
  expect(out).toMatch(/^clusterResources\(\): \{\n  CPU: \d+,/m);
  expect(out).toMatch(/^availableResources\(\): \{\n  CPU: \d+,/m);
  expect(out).toMatch(/'node:[\d.]+': 1/);
  expect(out).toMatch(/^    MetricsExportPort: [1-9]\d*,$/m);
  expect(out).toMatch(/^metrics: warren_node_resources_total\{.*resource="CPU".*\} \d+/m);
});

test("native: AssemblyScript kernels as remote functions and actor methods; a forbidden import refused", () => {
  const out = run("native");
  expect(out).toContain("kernels exported as remote functions: add, fib, dot");
  expect(out).toContain("fib.remote(80) -> 23416728348467684");
  expect(out).toContain("dot.remote(put(a), put(b)) over 1000000 doubles -> 750000");
  expect(out).toContain("actor dot.remote(put(a), put(b)) -> 750000");
  if (spawnSync(process.env.CXX ?? "g++", ["--version"]).status === 0) {
    expect(out).toContain("Node-API addon_fib.remote(80) -> 23416728348467684");
    expect(out).toContain("Node-API addon_dot.remote(put(a), put(b)) -> 750000");
    expect(out).toContain("actor addonDot.remote(put(a), put(b)) -> 750000");
  } else {
    expect(out).toMatch(/Node-API part skipped: no C\+\+ compiler .* found: install one/);
  }
  expect(out).toMatch(/refused: warren\.wasm\(\): the WebAssembly module .*forbidden\.wasm imports env\.readFile, which is not granted/);
});

test("shared actors: a thousand in one host process, each its own state; one killed while the others live on", () => {
  expect(run("shared_actors")).toMatch(/^1000 actors created and called in [\d.]+ s, in 1 host process\(es\)$/m);
});
