// Shared actors (`process: "shared"`) against the real broker: many in one host process, each with
// its own state, calls and death; a host's crash and its restarts.
import * as warren from "warren";
import { waitForCondition } from "warren/testing";
import { Broken, Counter, Gate } from "../fixtures/actors";

const Shared = Counter.options({ process: "shared" });

beforeAll(() => warren.init({ numCpus: 2 }));
afterAll(() => warren.shutdown());

/** Resolves to what the call gives, or to the error it throws. */
function settle<T>(ref: warren.ObjectRef<T>): Promise<T | Error> {
  return warren.get(ref).catch((err: Error) => err);
}

describe("shared actors", () => {
  test("live by the hundred in one host process, each with its own state", async () => {
    const own = Counter.remote();
    const actors = Array.from({ length: 200 }, (_, i) => Shared.remote(i));
    expect(await warren.get(actors.map((a) => a.increment.remote()))).toEqual(actors.map((_, i) => i + 1));
    expect(await warren.get(actors.map((a, i) => a.increment.remote(i)))).toEqual(actors.map((_, i) => 2 * i + 1));
    const pids = new Set(await warren.get(actors.map((a) => a.pid.remote())));
    expect(pids.size).toBe(1);
    expect(pids.has(await warren.get(own.pid.remote()))).toBe(false);
    const listed = await warren.state.listActors({ filters: [["state", "=", "ALIVE"]], limit: 1000 });
    const ids = new Set(actors.map((a) => a.actorId));
    expect(listed.filter((r) => ids.has(r.actor_id as string)).map((r) => r.pid)).toEqual(actors.map(() => [...pids][0]));
    await Promise.all([own, ...actors].map((a) => warren.kill(a)));
  });

  test("a shared actor's calls run in submission order, and an async one runs them concurrently", async () => {
    const c = Shared.remote();
    expect(await warren.get(Array.from({ length: 100 }, () => c.increment.remote()))).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    const g = Gate.options({ process: "shared" }).remote();
    const through = g.wait.remote();
    await waitForCondition(async () => (await warren.get(g.waiting.remote())) === 1);
    expect(await warren.get(g.open.remote())).toBe(1);
    expect(await warren.get(through)).toBe("through");
    await Promise.all([c, g].map((a) => warren.kill(a)));
  });

  test("kill() ends one shared actor, its queued calls too; the others in its host live on", async () => {
    const [a, b] = [Shared.remote(), Shared.remote(100)];
    const hostPid = await warren.get(a.pid.remote());
    const queued = Array.from({ length: 20 }, () => a.increment.remote());
    await warren.kill(a);
    for (const r of await Promise.all([...queued, a.increment.remote()].map(settle))) {
      if (r instanceof Error) expect(r).toBeInstanceOf(warren.ActorDiedError);
    }
    expect(await settle(a.get_.remote())).toBeInstanceOf(warren.ActorDiedError);
    expect(await warren.get(b.increment.remote())).toBe(101);
    expect(await warren.get(b.pid.remote())).toBe(hostPid);
    await warren.kill(b);
  });

  test("kill({ noRestart: false }) restarts a shared actor with fresh state, in a host", async () => {
    const a = Counter.options({ process: "shared", maxRestarts: 1 }).remote(5);
    expect(await warren.get(a.increment.remote())).toBe(6);
    await warren.kill(a, { noRestart: false });
    expect(await warren.get(a.increment.remote())).toBe(6);
    await warren.kill(a);
  });

  test("a call running when its shared actor is killed and restarted fails, as one on a killed process would, rather than hang", async () => {
    const g = Gate.options({ process: "shared", maxRestarts: 1 }).remote();
    const pending = g.wait.remote(); // runs until opened: never, on this incarnation
    await waitForCondition(async () => (await warren.get(g.waiting.remote())) === 1);
    await warren.kill(g, { noRestart: false });
    expect(await warren.get(pending, { timeout: 20 }).catch((e: Error) => e)).toBeInstanceOf(warren.ActorDiedError);
    expect(await warren.get(g.waiting.remote())).toBe(0); // the new incarnation holds no waiter
    await warren.kill(g);
  });

  test("a constructor that throws kills its shared actor only", async () => {
    const broken = Broken.options({ process: "shared", numCpus: 0 }).remote();
    const c = Shared.remote(1);
    const err = await settle(broken.ping.remote());
    expect(err).toBeInstanceOf(warren.ActorDiedError);
    expect((err as Error).message).toMatch(/constructor threw TypeError: cannot build/);
    expect(await warren.get(c.increment.remote())).toBe(2);
    await warren.kill(c);
  });

  test("exitActor() ends a shared actor after the call returns; its host lives on", async () => {
    const [a, b] = [Shared.remote(), Shared.remote()];
    expect(await warren.get(a.exit.remote())).toBe("bye");
    expect(await settle(a.increment.remote())).toBeInstanceOf(warren.ActorDiedError);
    expect(await warren.get(b.increment.remote())).toBe(1);
    await warren.kill(b);
  });

  test("a host's crash kills its actors: those with maxRestarts come back in a new host, fresh; the others are dead", async () => {
    const again = Counter.options({ process: "shared", maxRestarts: 1 }).remote(10);
    const once = Shared.remote(20);
    const hostPid = await warren.get(again.pid.remote());
    expect(await warren.get(once.pid.remote())).toBe(hostPid);
    expect(await warren.get(again.increment.remote())).toBe(11);
    process.kill(hostPid, "SIGKILL");
    await waitForCondition(async () => (await settle(once.get_.remote())) instanceof warren.ActorDiedError);
    await waitForCondition(async () => (await settle(again.get_.remote())) === 10);
    expect(await warren.get(again.pid.remote())).not.toBe(hostPid);
    await warren.kill(again);
  });

  test("past 1,000 actors a node starts another host; 2,500 killed at once all die, and the node lives on", async () => {
    const actors = Array.from({ length: 2500 }, () => Shared.remote());
    const pids = await warren.get(actors.map((a) => a.pid.remote()));
    const perHost = new Map<number, number>();
    for (const p of pids) perHost.set(p, (perHost.get(p) ?? 0) + 1);
    expect(perHost.size).toBeGreaterThanOrEqual(3);
    expect(Math.max(...perHost.values())).toBeLessThanOrEqual(1000);
    await Promise.all(actors.map((a) => warren.kill(a)));
    const after = await Promise.all(actors.map((a) => settle(a.get_.remote())));
    expect(after.filter((r) => !(r instanceof warren.ActorDiedError))).toEqual([]);
    const c = Shared.remote(7);
    expect(await warren.get(c.increment.remote())).toBe(8);
    await warren.kill(c);
  }, 120_000);

  test("a shared actor cannot take GPUs: an OptionsError says to use process: \"own\"", () => {
    expect(() => Counter.options({ process: "shared", numGpus: 1 })).toThrow(/process.*use process: "own"/s);
    expect(() => Counter.options({ process: "other" as "own" })).toThrow(/"own" or "shared"/);
  });
});
