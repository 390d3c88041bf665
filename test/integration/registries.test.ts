// Registries stay flat under churn (issue 12): many short-lived actors and many tasks leave
// the head's actor table at its dead-actor bound and the driver's mailbox map empty.
import * as warren from "warren";
import { currentRuntime } from "../../src/core/current";
import { add } from "../fixtures/tasks";
import { Counter } from "../fixtures/actors";

/** The head keeps this many dead actors here (HEAD_DEFAULTS.deadActorsKept, read by the head's daemon). */
const DEAD_KEPT = 10;
const ACTORS = 80;
const TASKS = 4000;

beforeAll(async () => {
  process.env.WARREN_DEAD_ACTORS_KEPT = String(DEAD_KEPT);
  await warren.init({ numCpus: 2 });
});
afterAll(async () => {
  await warren.shutdown();
  delete process.env.WARREN_DEAD_ACTORS_KEPT;
});

test("many short-lived actors and tasks leave the registries flat", async () => {
  const rt = currentRuntime();
  for (let i = 0; i < ACTORS; i += 4) {
    const batch = Array.from({ length: 4 }, () => Counter.remote());
    await warren.get(batch.map((c) => c.increment.remote()));
    await Promise.all(batch.map((c) => warren.kill(c)));
  }
  // Tasks in between: nothing of theirs may count against the actors' bound.
  for (let i = 0; i < TASKS; i += 200) await warren.get(Array.from({ length: 200 }, (_, j) => add.remote(i, j)));
  const actors = await warren.state.listActors({ limit: 10_000 });
  expect(actors.every((a) => a.state === "DEAD")).toBe(true);
  expect({ deadActors: actors.length, mailboxes: rt.mailboxes.size }).toEqual({ deadActors: DEAD_KEPT, mailboxes: 0 });
}, 120_000);
