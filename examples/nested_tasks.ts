// Seed pattern "Nested Remote Functions": g returns four ObjectRefs made by f; h waits for them.
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
  console.log(await warren.get(g.remote()));
  console.log(await warren.get(h.remote()));
  await warren.shutdown();
}

if (require.main === module) main();
