// Demands no node can meet (core/infeasible.ts, head/server.ts): the driver warns within a few
// seconds, naming the demand and what the nodes have, and again while it waits; with
// init({ onInfeasible: "error" }) what waits fails with InfeasibleError, tasks and actors alike.
import * as warren from "warren";
import { waitForCondition } from "warren/testing";
import { Where } from "../fixtures/placement";
import { f } from "../fixtures/resources";

afterEach(() => warren.shutdown());

test("bad values of onInfeasible are an OptionsError naming the choices", async () => {
  await expect(warren.init({ onInfeasible: "maybe" as "warn" })).rejects.toThrow(/onInfeasible.*"warn" or "error"/);
});

test("warn (the default): a warning within a few seconds, and again while it waits; the task keeps waiting", async () => {
  process.env.WARREN_INFEASIBLE_REPEAT_S = "1"; // the head (a child of this process) says it again every second
  const warned = jest.spyOn(console, "warn").mockImplementation(() => undefined);
  try {
    await warren.init({ numCpus: 1 });
    const started = Date.now();
    const ref = f.options({ resources: { Nope: 1 } }).remote();
    await waitForCondition(() => warned.mock.calls.length >= 1, 5);
    expect(Date.now() - started).toBeLessThan(5000);
    const text = String(warned.mock.calls[0][0]);
    expect(text).toMatch(/can fulfill resource request \{'CPU': 1, 'Nope': 1\}/);
    expect(text).toMatch(/its 1 live node\(s\) have: CPU 1\.0, memory/);
    expect(text).toContain(`warren start --resources '{"Nope":1}'`);
    expect(text).toMatch(/1 task or actor of this process waits for it/);
    await waitForCondition(() => warned.mock.calls.length >= 2, 10); // said again while it waits
    await expect(warren.get(ref, { timeout: 0.2 })).rejects.toThrow(warren.GetTimeoutError);
    expect(await warren.get(f.remote())).toBe(1); // the cluster runs on
  } finally {
    delete process.env.WARREN_INFEASIBLE_REPEAT_S;
    warned.mockRestore();
  }
});

test("error: the task and the actor fail with InfeasibleError; feasible work runs", async () => {
  await warren.init({ numCpus: 1, onInfeasible: "error" });
  const task = f.options({ resources: { Nope: 1 } }).remote();
  await expect(warren.get(task, { timeout: 10 })).rejects.toThrow(warren.InfeasibleError);
  const actor = Where.options({ resources: { Nope: 2 } }).remote();
  const call = warren.get(actor.node.remote(), { timeout: 10 });
  await expect(call).rejects.toThrow(warren.InfeasibleError);
  await expect(call).rejects.toThrow(/can fulfill resource request \{'CPU': 1, 'Nope': 2\}.*onInfeasible: "error"/s);
  // A later call fails at once, and the head records the actor dead.
  await expect(warren.get(actor.node.remote(), { timeout: 5 })).rejects.toThrow(warren.InfeasibleError);
  await waitForCondition(async () => (await warren.state.listActors()).some((a) => a.state === "DEAD"), 5);
  expect(await warren.get(f.remote())).toBe(1);
});
