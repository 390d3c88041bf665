// Seed pattern "Dynamic Remote Parameters": change numReturns and the task name per call with .options().
import * as assert from "node:assert/strict";
import * as warren from "warren";

export const f = warren.remote(function f(n: number) {
  return Array.from({ length: n }, (_, i) => i);
});

export const named = warren.remote(function named(x: number) {
  // The worker's process title is the task's name while it runs.
  assert.equal(process.title, "warren::special_f");
  return x + 1;
});

async function main() {
  await warren.init();

  const [id1, id2] = f.options({ numReturns: 2 }).remote(2);
  assert.equal(await warren.get(id1), 0);
  assert.equal(await warren.get(id2), 1);
  console.log("numReturns: 2 ->", await warren.get([id1, id2]));

  const obj = named.options({ name: "special_f" }).remote(3);
  assert.equal(await warren.get(obj), 4);
  console.log('name: "special_f" -> ran as warren::special_f and returned', await warren.get(obj));

  await warren.shutdown();
}

if (require.main === module) main();
