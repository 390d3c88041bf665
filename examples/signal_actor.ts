// Seed pattern "Multi-node synchronization using SignalActor": four tasks wait on one signal.
import * as warren from "warren";
import { SignalActor } from "warren/actors";
import { waitForCondition } from "warren/testing";

export const waitAndGo = warren.remote(async function wait_and_go(signal: warren.ActorHandle<SignalActor>) {
  // Blocking here releases this task's CPU, so all four can wait at once.
  await warren.get(signal.wait.remote());
  console.log("go!");
});

async function main() {
  await warren.init();
  const signal = SignalActor.remote();
  const tasks = Array.from({ length: 4 }, () => waitAndGo.remote(signal));
  console.log("ready...");
  // Tasks will all be waiting for the signal.
  await waitForCondition(async () => (await warren.get(signal.curNumWaiters.remote())) === 4);
  console.log("set..");
  await warren.get(signal.send.remote());
  // Tasks are unblocked.
  await warren.get(tasks);
  await warren.shutdown();
}

if (require.main === module) main();
