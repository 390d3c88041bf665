// Seed pattern "Dynamic Remote Parameters" (tasks): the same task with different resource demands
// per call, given with .options(); the task reports the GPUs it was given.
import * as assert from "node:assert/strict";
import * as warren from "warren";

export const g = warren.remote(function g() {
  return { gpuIds: warren.getGpuIds(), cudaVisibleDevices: process.env.CUDA_VISIBLE_DEVICES };
});

async function main() {
  // The GPUs are declared to the local cluster, not detected: this works the same on a machine
  // without any GPU (the ids are slots of the declared count; nothing here touches a device).
  await warren.init({ numGpus: 2 });
  const total = await warren.clusterResources();
  console.log(`this example declares numGpus: 2 (declared, not detected); cluster GPU: ${total.GPU}`);
  assert.equal(total.GPU, 2);

  // With default options the task asks for no GPU, so it is given none: getGpuIds() is []. (The
  // seed asserts [0] here, which only holds by chance of where it ran; a task is only given the
  // GPUs it asked for.) Its CUDA_VISIBLE_DEVICES is not set for it either: it keeps whatever
  // the cluster was started with (unset, unless you ran this with CUDA_VISIBLE_DEVICES set).
  const plain = await warren.get(g.remote());
  console.log("g.remote() -> getGpuIds():", plain.gpuIds, "CUDA_VISIBLE_DEVICES:", plain.cudaVisibleDevices);
  assert.deepEqual(plain.gpuIds, []);
  assert.equal(plain.cudaVisibleDevices, process.env.CUDA_VISIBLE_DEVICES);

  // Asking for one GPU for this call only gives it one of the two: id 0 or 1, also set as the
  // task's CUDA_VISIBLE_DEVICES.
  const dynamic = await warren.get(g.options({ numCpus: 1, numGpus: 1 }).remote());
  console.log(
    "g.options({ numCpus: 1, numGpus: 1 }).remote() -> getGpuIds():",
    dynamic.gpuIds,
    "CUDA_VISIBLE_DEVICES:",
    dynamic.cudaVisibleDevices,
  );
  assert.equal(dynamic.gpuIds.length, 1);
  assert.ok([0, 1].includes(dynamic.gpuIds[0]));
  assert.equal(dynamic.cudaVisibleDevices, String(dynamic.gpuIds[0]));

  await warren.shutdown();
}

if (require.main === module) main();
