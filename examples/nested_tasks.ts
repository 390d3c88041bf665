// Seed pattern "Nested Remote Functions": g returns four ObjectRefs made by f; h waits for them.
import * as assert from "node:assert/strict";
import * as warren from "warren";

export const f = warren.remote(function f() {
  return 1;
});

export const g = warren.remote(function g() {
  // Call f 4 times and return the resulting object refs.
  return Array.from({ length: 4 }, () => f.remote());
});

export const h = warren.remote(async function h() {
  // Call f 4 times, block until those 4 tasks finish, and return the values.
  return warren.get(Array.from({ length: 4 }, () => f.remote()));
});

async function main() {
  await warren.init();
  const refs = await warren.get(g.remote());
  console.log(refs);
  assert.equal(refs.length, 4);
  assert.ok(refs.every((r) => r instanceof warren.ObjectRef));
  const values = await warren.get(h.remote());
  console.log(values);
  assert.deepEqual(values, [1, 1, 1, 1]);
  await warren.shutdown();
}

if (require.main === module) main();
