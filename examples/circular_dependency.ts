// Seed pattern "Circular Dependencies": a task that holds a CPU and a GPU waits for another task
// that needs a CPU, on a node with only one CPU.
import * as assert from "node:assert/strict";
import * as warren from "warren";

export const f = warren.remote(async function f() {
  // While f runs, g is blocked in get: what is free on the node now? (Nodes report what is free
  // every half second, so wait for a report made after f started.)
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const free = await warren.availableResources();
  return { value: 1, assigned: warren.getRuntimeContext().assignedResources, free: { CPU: free.CPU ?? 0, GPU: free.GPU ?? 0 } };
});

export const g = warren.remote({ numCpus: 1, numGpus: 1 }, async function g() {
  // Blocked in get, g lends its CPU to f and keeps its GPU; it takes the CPU back when get returns.
  const inner = await warren.get(f.remote());
  return { inner, gpuIds: warren.getGpuIds(), assigned: warren.getRuntimeContext().assignedResources };
});

async function main() {
  // One CPU and one (declared, not detected) GPU: g takes both, so f can only run on g's CPU.
  await warren.init({ numCpus: 1, numGpus: 1 });
  console.log("this example declares numCpus: 1, numGpus: 1");

  const result = await warren.get(g.remote(), { timeout: 30 });
  console.log("g() ->", result.inner.value);
  console.log("f held:", result.inner.assigned, "while g held:", result.assigned, "and GPU ids", result.gpuIds);
  console.log("free on the node while f ran:", result.inner.free);
  console.log("g released its CPU while blocked in get (so f could run on it) and kept its GPU");
  assert.equal(result.inner.value, 1);
  assert.deepEqual(result.inner.assigned, { CPU: 1 });
  assert.deepEqual(result.assigned, { CPU: 1, GPU: 1 });
  assert.deepEqual(result.gpuIds, [0]);
  assert.deepEqual(result.inner.free, { CPU: 0, GPU: 0 });

  await warren.shutdown();
}

if (require.main === module) main();
