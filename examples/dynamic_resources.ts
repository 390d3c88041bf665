// Seed pattern "Dynamic Remote Parameters" (actors): one actor class, declared with numCpus: 4,
// instantiated three times with other resource demands given per instance with .options().
import * as assert from "node:assert/strict";
import * as warren from "warren";
import { waitForCondition } from "warren/testing";

@warren.actor({ numCpus: 4 })
export class Counter extends warren.Actor {
  value = 0;
  increment() {
    this.value += 1;
    return this.value;
  }
}

/** The entries of a resource map that this example is about (memory and node:<ip> vary by machine). */
function pick(r: Record<string, number>): Record<string, number> {
  return Object.fromEntries(["CPU", "Custom1", "Custom2", "Custom3"].filter((k) => k in r).map((k) => [k, r[k]]));
}

async function main() {
  // The three actors together need 1 + 2 + 3 = 6 CPUs and one each of Custom1, Custom2 and
  // Custom3. This machine has neither that many cores nor any custom resources, so the local
  // cluster declares them: these are declared resources, not detected ones.
  await warren.init({ numCpus: 6, resources: { Custom1: 1, Custom2: 1, Custom3: 1 } });
  console.log("declared resources: numCpus: 6, resources: { Custom1: 1, Custom2: 1, Custom3: 1 }");
  console.log("cluster resources:", pick(await warren.clusterResources()));

  const before = await warren.availableResources();
  console.log("available before the actors:", pick(before));
  assert.deepEqual(pick(before), { CPU: 6, Custom1: 1, Custom2: 1, Custom3: 1 });

  // The options replace the class's numCpus: 4 for each instance.
  const a1 = Counter.options({ numCpus: 1, resources: { Custom1: 1 } }).remote();
  const a2 = Counter.options({ numCpus: 2, resources: { Custom2: 1 } }).remote();
  const a3 = Counter.options({ numCpus: 3, resources: { Custom3: 1 } }).remote();

  const values = await warren.get([a1.increment.remote(), a2.increment.remote(), a3.increment.remote()]);
  console.log("a1, a2, a3 increment ->", values);
  assert.deepEqual(values, [1, 1, 1]);
  const again = await warren.get(a2.increment.remote());
  console.log("a2 increment again ->", again);
  assert.equal(again, 2);

  // An actor that sets numCpus holds it for its whole life, as it holds its custom resources.
  // With all six CPUs and the three custom resources held, none of them is free, and like Ray
  // availableResources() leaves out a resource with nothing free.
  // (Availability is reported by the node every half second, so wait for the report.)
  let after: Record<string, number> = {};
  await waitForCondition(async () => {
    after = pick(await warren.availableResources());
    return Object.keys(after).length === 0;
  }, 10).catch(() => {}); // the assert below says what was left
  console.log("available while the actors are alive:", after);
  assert.deepEqual(after, {});
  const rest = Object.keys(await warren.availableResources()).sort();
  console.log("still free: only", rest.join(", "));
  assert.deepEqual(rest.filter((k) => !k.startsWith("node:")), ["memory", "object_store_memory"]);

  await warren.shutdown();
}

if (require.main === module) main();
