// Seed pattern "Accelerator Types": a task that must run on a node with a given GPU model. The
// option is a demand of 0.001 of the node's "accelerator_type:<model>" resource.
import * as assert from "node:assert/strict";
import * as warren from "warren";
import { NVIDIA_TESLA_T4, NVIDIA_TESLA_V100 } from "warren/accelerators";

export const train = warren.remote({ numGpus: 1, acceleratorType: NVIDIA_TESLA_V100 }, function train(data: string) {
  return {
    message: "This function was run on a node with a Tesla V100 GPU",
    data,
    assigned: warren.getRuntimeContext().assignedResources,
  };
});

async function main() {
  // A node with a detected V100 has the resource "accelerator_type:V100" by itself. This machine
  // has no V100, so the local cluster declares one GPU and the marker resource.
  await warren.init({ numGpus: 1, resources: { "accelerator_type:V100": 1 } });
  console.log('this example declares a V100: numGpus: 1, resources: { "accelerator_type:V100": 1 }');

  const result = await warren.get(train.remote("my data"));
  console.log(result.message);
  console.log("resources the task held:", result.assigned);
  assert.equal(result.message, "This function was run on a node with a Tesla V100 GPU");
  assert.equal(result.data, "my data");
  assert.equal(result.assigned.GPU, 1);
  assert.equal(result.assigned["accelerator_type:V100"], 0.001);

  // The same task asking for a T4 cannot be placed here: no node has "accelerator_type:T4".
  const onT4 = train.options({ acceleratorType: NVIDIA_TESLA_T4 }).remote("my data");
  const err = await warren.get(onT4, { timeout: 2 }).then(() => undefined, (e: Error) => e);
  console.log(`with acceleratorType: ${NVIDIA_TESLA_T4} it does not run here: ${err?.name}`);
  assert.ok(err instanceof warren.GetTimeoutError);
  await warren.cancel(onT4);

  await warren.shutdown();
}

if (require.main === module) main();
