// Actors against the real broker: ordering, concurrency, handles, names, kill, restarts, errors.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as warren from "warren";
import { waitForCondition } from "warren/testing";
import { Broken, Caller, Counter, Gate, Grouped, Recorder, callCounter, getOrCreate, makeCounter } from "../fixtures/actors";
import { currentRuntime } from "../../src/core/current";
import { captureStdout } from "../helpers";
import { add } from "../fixtures/tasks";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "warren-actors-"));

beforeAll(() => warren.init({ numCpus: 2 }));
afterAll(async () => {
  await warren.shutdown();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The actor's state in the head's registry (its lifecycle machine). */
async function stateOf(h: warren.ActorHandle<unknown>): Promise<string | undefined> {
  const info = await currentRuntime().rpc.head("actor.info", { id: h.actorId });
  return info?.state;
}

describe("calls", () => {
  test("an actor keeps state between calls", async () => {
    const c = Counter.remote(10);
    expect(c).toBeInstanceOf(warren.ActorHandle);
    expect(await warren.get(c.increment.remote())).toBe(11);
    expect(await warren.get(c.increment.remote(5))).toBe(16);
    expect(await warren.get(c.get_.remote())).toBe(16);
    expect(await stateOf(c)).toBe("ALIVE");
  });

  test("an actor created while workers lease its placement shape starts: a lease hands its creation to the node", async () => {
    for (let round = 0; round < 3; round++) {
      const burst = Array.from({ length: 200 }, (_, i) => add.remote(i, 1));
      const c = Counter.options({ numCpus: 1 }).remote(round);
      expect(await warren.get(burst)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
      expect(await warren.get(c.increment.remote(), { timeout: 20 })).toBe(round + 1);
      await warren.kill(c);
    }
  });

  test("calls from one caller run in submission order", async () => {
    const r = Recorder.remote();
    const refs = Array.from({ length: 300 }, (_, i) => r.add.remote(i));
    expect(await warren.get(refs)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(await warren.get(r.all.remote())).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });

  test("an async actor runs calls concurrently: wait() is pending while open() runs", async () => {
    const g = Gate.remote();
    const waits = [g.wait.remote(), g.wait.remote(), g.wait.remote()];
    await waitForCondition(async () => (await warren.get(g.waiting.remote())) === 3);
    expect(await warren.get(g.open.remote())).toBe(3);
    expect(await warren.get(waits)).toEqual(["through", "through", "through"]);
  });

  test("maxConcurrency 1 makes even an async actor run one call at a time", async () => {
    const g = Gate.options({ maxConcurrency: 1 }).remote();
    const blocked = g.wait.remote();
    await expect(warren.get(g.open.remote(), { timeout: 1 })).rejects.toBeInstanceOf(warren.GetTimeoutError);
    await warren.kill(g);
    await expect(warren.get(blocked)).rejects.toBeInstanceOf(warren.ActorDiedError);
  });

  test("concurrency groups: a group's limit holds its calls back while other methods run", async () => {
    const g = Grouped.remote();
    const slow = g.slowIo.remote();
    await waitForCondition(async () => (await warren.get(g.waiting.remote())) === 1);
    const quick = g.quickIo.remote();
    await expect(warren.get(quick, { timeout: 0.5 })).rejects.toBeInstanceOf(warren.GetTimeoutError);
    expect(await warren.get(g.release.remote())).toBe(1);
    expect(await warren.get([slow, quick])).toEqual(["slow io", "quick io"]);
  });

  test("a method in a group the actor does not define is an OptionsError at definition", () => {
    class Bad extends warren.Actor {
      m(): number {
        return 1;
      }
    }
    warren.method({ concurrencyGroup: "nope" })(Bad.prototype, "m", Object.getOwnPropertyDescriptor(Bad.prototype, "m"));
    expect(() => warren.actor({ concurrencyGroups: { io: 2 } })(Bad)).toThrow(/m\.concurrencyGroup: "nope" is not one of the actor's concurrencyGroups \(io\)/);
    expect(() => warren.actor({ concurrencyGroups: { io: 0 } } as never)).toThrow(warren.OptionsError);
  });

  test("@method numReturns splits a method's result", async () => {
    const c = Counter.remote(4);
    const [a, b] = c.pair.remote() as unknown as warren.ObjectRef<number>[];
    expect(await warren.get([a, b])).toEqual([4, 5]);
    const [x, y] = c.pair.options({ numReturns: 2 }).remote();
    expect(await warren.get([x, y])).toEqual([4, 5]);
  });

  test("a method that throws gives TaskError; the actor lives on", async () => {
    const c = Counter.remote();
    const err = await warren.get(c.fail.remote()).catch((e) => e);
    expect(err).toBeInstanceOf(warren.TaskError);
    expect(err.functionName).toBe("Counter.fail");
    expect(err.cause).toBeInstanceOf(RangeError);
    expect(await warren.get(c.increment.remote())).toBe(1);
  });

  test("the actor's worker is titled by its class and the running method", async () => {
    const c = Counter.remote();
    expect(await warren.get(c.title.remote())).toBe("warren::Counter.title");
  });

  test("actor output reaches the driver prefixed with the class name", async () => {
    const c = Counter.remote();
    const out = await captureStdout(() => warren.get(c.say.remote("actor speaking")));
    expect(out).toMatch(/^\(Counter pid=\d+\) actor speaking$/m);
  });
});

describe("handles", () => {
  test("a handle passed to a task reaches the same actor", async () => {
    const c = Counter.remote();
    expect(await warren.get(callCounter.remote(c, 5))).toBe(5);
    expect(await warren.get(c.get_.remote())).toBe(5);
  });

  test("an actor created inside a task comes back as a working handle", async () => {
    const h = await warren.get(makeCounter.remote(40));
    expect(h).toBeInstanceOf(warren.ActorHandle);
    expect(await warren.get(h.increment.remote(2))).toBe(42);
  });

  test("a method named like the handle's own actorId is refused at the decorator; Object's methods stay the handle's", () => {
    class Clash extends warren.Actor {
      actorId(): string {
        return "mine";
      }
    }
    expect(() => warren.actor()(Clash)).toThrow(/Clash\.actorId: an actor method cannot be named actorId.*rename the method/);
    // Counter defines toString too: had it become a remote method, String() of the handle would throw.
    const c = Counter.remote();
    expect(String(c)).toBe(`ActorHandle(Counter, ${c.actorId})`);
    expect(c.actorId).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe("named actors", () => {
  test("getActor finds a named actor; a taken name fails at creation naming getActor", async () => {
    const a = Counter.options({ name: "named-a" }).remote(7);
    const h = await warren.getActor<Counter>("named-a");
    expect(h.actorId).toBe(a.actorId);
    expect(await warren.get(h.increment.remote())).toBe(8);
    expect(() => Counter.options({ name: "named-a" }).remote()).toThrow(/already taken.*getActor\("named-a"/);
  });

  test("names live in namespaces", async () => {
    Counter.options({ name: "shared", namespace: "ns1" }).remote(1);
    Counter.options({ name: "shared", namespace: "ns2" }).remote(2);
    const one = await warren.getActor<Counter>("shared", { namespace: "ns1" });
    const two = await warren.getActor<Counter>("shared", { namespace: "ns2" });
    expect(await warren.get([one.get_.remote(), two.get_.remote()])).toEqual([1, 2]);
    await expect(warren.getActor("shared")).rejects.toThrow(/no live actor named "shared"/);
  });

  test("concurrent get-or-create of one name yields one actor", async () => {
    const handles = await warren.get(Array.from({ length: 6 }, () => getOrCreate.remote("singleton")));
    expect(new Set(handles.map((h) => h.actorId)).size).toBe(1);
    const local = Counter.options({ name: "singleton", getIfExists: true }).remote();
    expect(local.actorId).toBe(handles[0].actorId);
    expect(await warren.get(local.increment.remote())).toBe(1);
  });

  test("getActor of an unknown name is a clear error", async () => {
    await expect(warren.getActor("nobody-here")).rejects.toThrow(/no live actor named "nobody-here"/);
  });
});

describe("death and restarts", () => {
  test("a killed actor's calls throw ActorDiedError, queued ones too", async () => {
    const g = Gate.remote();
    const pending = g.wait.remote();
    await waitForCondition(async () => (await warren.get(g.waiting.remote())) === 1);
    await warren.kill(g, { noRestart: true });
    await expect(warren.get(pending, { timeout: 10 })).rejects.toBeInstanceOf(warren.ActorDiedError);
    const later = await warren.get(g.waiting.remote(), { timeout: 10 }).catch((e) => e);
    expect(later).toBeInstanceOf(warren.ActorDiedError);
    expect(later.message).toMatch(/killed/);
    expect(await stateOf(g)).toBe("DEAD");
  });

  test("a constructor that throws makes every call throw ActorDiedError with the TaskError as cause", async () => {
    const b = Broken.remote();
    const err = await warren.get(b.ping.remote()).catch((e) => e);
    expect(err).toBeInstanceOf(warren.ActorDiedError);
    expect(err.message).toMatch(/its constructor threw TypeError: cannot build/);
    expect(err.cause).toBeInstanceOf(warren.TaskError);
    expect(err.cause.cause).toBeInstanceOf(TypeError);
    expect(err.cause.cause.message).toBe("cannot build");
    await expect(warren.get(b.ping.remote())).rejects.toBeInstanceOf(warren.ActorDiedError);
  });

  test("without maxRestarts, an actor whose worker is SIGKILLed is dead", async () => {
    const c = Counter.remote();
    process.kill(await warren.get(c.pid.remote()), "SIGKILL");
    const err = await warren.get(c.increment.remote()).catch((e) => e);
    expect(err).toBeInstanceOf(warren.ActorDiedError);
    expect(err.message).toMatch(/maxRestarts/);
  });

  test("with maxRestarts, a SIGKILLed actor restarts in a new process with fresh state", async () => {
    const c = Counter.options({ maxRestarts: 1 }).remote(100);
    expect(await warren.get(c.increment.remote())).toBe(101);
    const first = await warren.get(c.pid.remote());
    process.kill(first, "SIGKILL");
    await waitForCondition(async () => (await stateOf(c)) === "ALIVE" && (await warren.get(c.pid.remote()).catch(() => first)) !== first);
    expect(await warren.get(c.increment.remote())).toBe(101); // the constructor ran again
    process.kill(await warren.get(c.pid.remote()), "SIGKILL"); // its one restart is used
    await waitForCondition(async () => (await stateOf(c)) === "DEAD");
    await expect(warren.get(c.increment.remote())).rejects.toBeInstanceOf(warren.ActorDiedError);
  });

  test("a call in flight when the actor dies fails unless maxTaskRetries allows a retry", async () => {
    const noRetry = Counter.options({ maxRestarts: 1 }).remote();
    const err = await warren.get(noRetry.crashOnce.remote(path.join(tmp, "in-flight-1"))).catch((e) => e);
    expect(err).toBeInstanceOf(warren.ActorDiedError);
    expect(await warren.get(noRetry.increment.remote())).toBe(1); // restarted and serving

    const retry = Counter.options({ maxRestarts: 1, maxTaskRetries: 1 }).remote();
    expect(await warren.get(retry.crashOnce.remote(path.join(tmp, "in-flight-2")))).toBe("done");
  });

  test("calls answered before a crash are not run again by the next incarnation, even with maxTaskRetries", async () => {
    for (const maxTaskRetries of [0, 2]) {
      const c = Counter.options({ maxRestarts: 1, maxTaskRetries }).remote(100);
      for (let i = 1; i <= 3; i++) expect(await warren.get(c.increment.remote())).toBe(100 + i);
      const first = await warren.get(c.pid.remote());
      process.kill(first, "SIGKILL");
      await waitForCondition(async () => (await warren.get(c.pid.remote()).catch(() => first)) !== first);
      expect(await warren.get(c.get_.remote())).toBe(100); // fresh state, and no increment ran again
    }
  });

  test("once kill() resolves, calls on handles from getActor fail, in this process and in another", async () => {
    const there = Caller.remote();
    for (let round = 0; round < 5; round++) {
      const name = `killed-then-called-${round}`;
      const c = Counter.options({ name }).remote();
      const here = await warren.getActor<Counter>(name);
      expect(await warren.get(there.find.remote(name))).toBe(c.actorId);
      expect(await warren.get(here.increment.remote())).toBe(1);
      await warren.kill(c);
      const mine = await warren.get(here.increment.remote(), { timeout: 10 }).catch((e) => e);
      expect({ round, mine }).toEqual({ round, mine: expect.any(warren.ActorDiedError) });
      expect(mine.message).toMatch(/killed/);
      expect(await warren.get(there.increment.remote())).toBe("ActorDiedError");
      expect(await stateOf(c)).toBe("DEAD");
    }
  });

  test("kill() of an actor no node can place resolves, and its calls fail", async () => {
    const c = Counter.options({ resources: { Nowhere: 1 } }).remote();
    const queued = c.increment.remote();
    await warren.kill(c);
    await expect(warren.get(queued, { timeout: 10 })).rejects.toBeInstanceOf(warren.ActorDiedError);
    await expect(warren.get(c.increment.remote(), { timeout: 10 })).rejects.toThrow(/killed before it started/);
    expect(await stateOf(c)).toBe("DEAD");
  });

  test("once kill({ noRestart: false }) resolves, calls go to the restarted actor", async () => {
    const c = Counter.options({ maxRestarts: 3 }).remote(5);
    for (let round = 0; round < 3; round++) {
      const before = await warren.get(c.pid.remote());
      await warren.get(c.increment.remote(10));
      await warren.kill(c, { noRestart: false });
      const after = await warren.get(c.increment.remote(), { timeout: 20 }).catch((e) => e);
      expect({ round, after }).toEqual({ round, after: 6 }); // the constructor ran again
      expect(await warren.get(c.pid.remote())).not.toBe(before);
    }
  });

  test("exitActor ends the actor after the call returns", async () => {
    const c = Counter.remote();
    expect(await warren.get(c.exit.remote())).toBe("bye");
    await expect(warren.get(c.increment.remote())).rejects.toThrow(/exitActor/);
    expect(await stateOf(c)).toBe("DEAD");
  });
});
