// An actor: state that lives in one worker, changed by calls that run in the order they were sent.
import * as assert from "node:assert/strict";
import * as warren from "warren";

@warren.actor()
export class Counter extends warren.Actor {
  value = 0;
  increment() {
    this.value += 1;
    return this.value;
  }
}

async function main() {
  await warren.init();
  const counter = Counter.remote();
  const refs = Array.from({ length: 5 }, () => counter.increment.remote());
  const values = await warren.get(refs);
  console.log(values);
  assert.deepEqual(values, [1, 2, 3, 4, 5]);
  await warren.shutdown();
}

if (require.main === module) main();
