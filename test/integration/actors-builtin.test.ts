// The ready-made actors of warren/actors (SignalActor, Semaphore, Queue) against the real broker.
import * as warren from "warren";
import { Queue, Semaphore, SignalActor } from "warren/actors";
import { waitForCondition } from "warren/testing";
import * as u from "../fixtures/builtin_users";
import { currentRuntime } from "../../src/core/current";

beforeAll(() => warren.init({ numCpus: 2 }));
afterAll(() => warren.shutdown());

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Whether `ref` is still unfinished (`seconds` after asking: 0 looks once). */
async function pending(ref: warren.ObjectRef<unknown>, seconds = 0): Promise<boolean> {
  const [ready] = await warren.wait([ref], { timeout: seconds });
  return ready.length === 0;
}

/** A promise and whether it has settled yet. */
function track<T>(p: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let done = false;
  const promise = p.finally(() => { done = true; });
  return { promise, settled: () => done };
}

/** The actor's state in the head's registry (ALIVE, DEAD...). */
async function stateOf(h: warren.ActorHandle<unknown>): Promise<string | undefined> {
  const info = await currentRuntime().rpc.head("actor.info", { id: h.actorId });
  return info?.state;
}

async function waiters(signal: warren.ActorHandle<SignalActor>): Promise<number> {
  return warren.get(signal.curNumWaiters.remote(), { timeout: 10 });
}

describe("SignalActor", () => {
  test("tasks blocked in get(signal.wait) all proceed after send; their gets free the CPUs", async () => {
    const signal = SignalActor.remote();
    const refs = range(4).map(() => u.waitOnSignal.remote(signal));
    // Four tasks wait at once on a 2-CPU node: each blocked get gave its CPU back.
    await waitForCondition(async () => (await waiters(signal)) === 4, 30);
    const [ready] = await warren.wait(refs, { numReturns: 4, timeout: 0 });
    expect(ready).toHaveLength(0);
    await warren.get(signal.send.remote());
    const pids = await warren.get(refs, { timeout: 30 });
    expect(pids.every((p) => typeof p === "number" && p !== process.pid)).toBe(true);
    expect(await waiters(signal)).toBe(0);
  });

  test("a wait() stays pending while send() runs (the actor is concurrent)", async () => {
    const signal = SignalActor.remote();
    const w = signal.wait.remote();
    expect(await waiters(signal)).toBe(1); // answered while wait() is pending
    expect(await pending(w)).toBe(true);
    await warren.get(signal.send.remote(), { timeout: 10 });
    await warren.get(w, { timeout: 10 });
    expect(await waiters(signal)).toBe(0);
  });

  test("send() leaves the signal set; send(true) releases the waiters and clears it", async () => {
    const signal = SignalActor.remote();
    const first = signal.wait.remote();
    await waitForCondition(async () => (await waiters(signal)) === 1);
    await warren.get(signal.send.remote(true));
    await warren.get(first, { timeout: 10 });

    const second = signal.wait.remote(); // cleared: this one waits
    expect(await waiters(signal)).toBe(1);
    expect(await pending(second, 0.2)).toBe(true);
    await warren.get(signal.send.remote());
    await warren.get(second, { timeout: 10 });

    await warren.get(signal.wait.remote(), { timeout: 10 }); // set: returns at once
    expect(await waiters(signal)).toBe(0);
  });

  test("wait(false) returns at once on an unset signal", async () => {
    const signal = SignalActor.remote();
    const blocked = signal.wait.remote();
    await warren.get(signal.wait.remote(false), { timeout: 10 });
    expect(await waiters(signal)).toBe(1);
    expect(await pending(blocked)).toBe(true);
    await warren.get(signal.send.remote());
    await warren.get(blocked, { timeout: 10 });
  });
});

describe("Semaphore", () => {
  test("at most `value` tasks hold it at once under contention", async () => {
    const sema = Semaphore.remote(2);
    const gate = SignalActor.remote();
    const log = u.EventLog.remote();
    const n = 5;
    const refs = range(n).map((i) => u.holdSemaphore.remote(sema, gate, log, i));
    const count = (events: string[], kind: string) => events.filter((e) => e.startsWith(kind)).length;
    // Every task has started and asked for the semaphore; two hold it, waiting at the gate.
    await waitForCondition(async () => {
      const events = await warren.get(log.all.remote());
      return count(events, "start") === n && count(events, "enter") >= 2;
    }, 30);
    await waitForCondition(async () => (await waiters(gate)) === 2);
    expect(await warren.get(sema.locked.remote())).toBe(true);
    expect(count(await warren.get(log.all.remote()), "enter")).toBe(2);

    await warren.get(gate.send.remote());
    expect((await warren.get(refs, { timeout: 30 })).sort()).toEqual(range(n));
    const events = await warren.get(log.all.remote());
    expect(count(events, "enter")).toBe(n);
    expect(count(events, "exit")).toBe(n);
    let inside = 0;
    let most = 0;
    for (const e of events) {
      if (e.startsWith("enter")) most = Math.max(most, ++inside);
      if (e.startsWith("exit")) inside--;
    }
    expect(most).toBe(2);
    expect(await warren.get(sema.locked.remote())).toBe(false);
  });

  test("acquire waits for a release; locked() tells whether a permit is free", async () => {
    const sema = Semaphore.remote(); // value 1
    expect(await warren.get(sema.locked.remote())).toBe(false);
    await warren.get(sema.acquire.remote());
    expect(await warren.get(sema.locked.remote())).toBe(true);
    const second = sema.acquire.remote();
    expect(await warren.get(sema.locked.remote())).toBe(true); // answered while acquire waits
    expect(await pending(second, 0.2)).toBe(true);
    await warren.get(sema.release.remote());
    await warren.get(second, { timeout: 10 });
    expect(await warren.get(sema.locked.remote())).toBe(true); // the permit went to the waiter
    await warren.get(sema.release.remote());
    expect(await warren.get(sema.locked.remote())).toBe(false);
  });

  test("Semaphore(0) starts locked; release beyond the start value adds permits; a bad value fails", async () => {
    const sema = Semaphore.remote(0);
    expect(await warren.get(sema.locked.remote())).toBe(true);
    const waiting = sema.acquire.remote();
    expect(await pending(waiting, 0.1)).toBe(true);
    await warren.get([sema.release.remote(), sema.release.remote()]);
    await warren.get(waiting, { timeout: 10 });
    expect(await warren.get(sema.locked.remote())).toBe(false);
    await warren.get(sema.acquire.remote(), { timeout: 10 });
    expect(await warren.get(sema.locked.remote())).toBe(true);

    const bad = Semaphore.remote(-1);
    const err = await warren.get(bad.locked.remote()).catch((e) => e);
    expect(err).toBeInstanceOf(warren.ActorDiedError);
    expect(String(err.cause?.message)).toMatch(/value must be an integer >= 0/);
  });
});

describe("Queue", () => {
  test("put and get in FIFO order; qsize, size, empty and full on an unbounded queue", async () => {
    const q = new Queue<number>();
    expect(q.maxsize).toBe(0);
    expect(await q.empty()).toBe(true);
    for (const i of range(5)) await q.put(i);
    expect(await q.qsize()).toBe(5);
    expect(await q.size()).toBe(5);
    expect(await q.empty()).toBe(false);
    expect(await q.full()).toBe(false);
    const got: number[] = [];
    for (let i = 0; i < 5; i++) got.push(await q.get());
    expect(got).toEqual(range(5));
    expect(await q.empty()).toBe(true);
    expect(await q.qsize()).toBe(0);
  });

  test("non-blocking calls on an empty or full queue throw Empty and Full", async () => {
    const q = new Queue<number>({ maxsize: 2 });
    const empty = await q.getNowait().catch((e) => e);
    expect(empty).toBeInstanceOf(warren.Empty);
    expect(empty).toBeInstanceOf(warren.WarrenError);
    expect(empty.message).toMatch(/empty/);
    await expect(q.get({ block: false })).rejects.toBeInstanceOf(warren.Empty);
    await q.putNowait(1);
    await q.put(2, { block: false });
    expect(await q.full()).toBe(true);
    expect(await q.qsize()).toBe(2);
    const full = await q.putNowait(3).catch((e) => e);
    expect(full).toBeInstanceOf(warren.Full);
    expect(full.message).toMatch(/full \(maxsize 2\)/);
    await expect(q.put(3, { block: false })).rejects.toBeInstanceOf(warren.Full);
    expect(await q.qsize()).toBe(2);
    expect(await q.getNowait()).toBe(1);
    expect(await q.full()).toBe(false);
    expect(await q.get({ block: false })).toBe(2);
    expect(await q.empty()).toBe(true);
  });

  test("a blocking call whose timeout runs out throws Empty or Full, and leaves no waiter behind", async () => {
    const q = new Queue<string>({ maxsize: 1 });
    let t0 = Date.now();
    await expect(q.get({ timeout: 0.3 })).rejects.toBeInstanceOf(warren.Empty);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    await expect(q.get({ timeout: 0 })).rejects.toBeInstanceOf(warren.Empty);
    await q.put("a", { timeout: 0 }); // room: at once
    expect(await q.qsize()).toBe(1); // not handed to the expired getters
    t0 = Date.now();
    await expect(q.put("b", { timeout: 0.3 })).rejects.toBeInstanceOf(warren.Full);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    await expect(q.put("b", { timeout: 0 })).rejects.toBeInstanceOf(warren.Full);
    expect(await q.get({ timeout: 5 })).toBe("a");
    expect(await q.empty()).toBe(true); // the expired put's item never went in
    // A timeout long enough is met by a put.
    const g = q.get({ timeout: 30 });
    await q.put("c");
    expect(await g).toBe("c");
  });

  test("a timeout of null waits forever, like Python's None", async () => {
    const q = new Queue<string>({ maxsize: 1 });
    const get = track(q.get({ timeout: null }));
    expect(await q.empty()).toBe(true); // answered after the get arrived: it waits
    expect(get.settled()).toBe(false);
    await q.put("a", { timeout: null }); // room: at once
    expect(await get.promise).toBe("a");

    await q.put("b");
    const put = track(q.put("c", { timeout: null }));
    expect(await q.full()).toBe(true);
    expect(put.settled()).toBe(false);
    expect(await q.get({ timeout: null })).toBe("b");
    await put.promise;
    expect(await q.get()).toBe("c");
  });

  test("a blocking put waits for room and a blocking get for an item", async () => {
    const q = new Queue<string>({ maxsize: 1 });
    await q.put("a");
    const put = track(q.put("b"));
    expect(await q.qsize()).toBe(1); // answered after the put arrived: it waits
    expect(await q.full()).toBe(true);
    expect(put.settled()).toBe(false);
    expect(await q.get()).toBe("a");
    await put.promise;
    expect(await q.get()).toBe("b");

    const get = track(q.get());
    expect(await q.empty()).toBe(true);
    expect(get.settled()).toBe(false);
    await q.put("c");
    expect(await get.promise).toBe("c");
    expect(await q.qsize()).toBe(0);
  });

  test("items of waiting putters join the back of the queue in order", async () => {
    const q = new Queue<number>({ maxsize: 2 });
    await q.putNowaitBatch([1, 2]);
    const puts = [q.put(3), q.put(4)];
    expect(await q.qsize()).toBe(2);
    expect(await q.getNowaitBatch(2)).toEqual([1, 2]);
    await Promise.all(puts);
    expect(await q.qsize()).toBe(2);
    expect(await q.get()).toBe(3);
    expect(await q.get()).toBe(4);
  });

  test("putNowaitBatch and getNowaitBatch are all or nothing", async () => {
    const q = new Queue<number>({ maxsize: 3 });
    await q.putNowaitBatch([1, 2]);
    const full = await q.putNowaitBatch([3, 4]).catch((e) => e);
    expect(full).toBeInstanceOf(warren.Full);
    expect(full.message).toMatch(/cannot add 2 items to a queue of size 2 and maxsize 3/);
    expect(await q.qsize()).toBe(2);
    await q.putNowaitBatch(new Set([3])); // any iterable
    const empty = await q.getNowaitBatch(4).catch((e) => e);
    expect(empty).toBeInstanceOf(warren.Empty);
    expect(empty.message).toMatch(/cannot get 4 items from a queue of size 3/);
    expect(await q.qsize()).toBe(3);
    expect(await q.getNowaitBatch(0)).toEqual([]);
    expect(await q.getNowaitBatch(2)).toEqual([1, 2]);
    expect(await q.getNowaitBatch(1)).toEqual([3]);
    await expect(q.getNowaitBatch(1)).rejects.toBeInstanceOf(warren.Empty);

    const big = new Queue<number>();
    await big.putNowaitBatch(range(1000));
    expect(await big.qsize()).toBe(1000);
    expect(await big.getNowaitBatch(1000)).toEqual(range(1000));
  });

  test("invalid arguments throw clear errors and send nothing", async () => {
    expect(() => new Queue({ maxsize: 1.5 })).toThrow(warren.OptionsError);
    expect(() => new Queue({ maxsize: "3" as unknown as number })).toThrow(/maxsize: must be an integer/);
    expect(() => new Queue({ bogus: 1 } as never)).toThrow(/bogus: unknown option/);
    expect(() => new Queue({ actorOptions: { numCpus: -1 } })).toThrow(warren.OptionsError);
    const q = new Queue<number>({ maxsize: 1 });
    await expect(q.get({ timeout: -1 })).rejects.toThrow(/timeout: must be a number of seconds >= 0/);
    await expect(q.put(1, { timeout: NaN })).rejects.toThrow(warren.OptionsError);
    await expect(q.get({ timeout: "5" as unknown as number })).rejects.toThrow(/timeout: must be a number of seconds >= 0, or null/);
    await expect(q.get({ block: "no" as unknown as boolean })).rejects.toThrow(/block: must be a boolean/);
    await expect(q.getNowaitBatch(1.5)).rejects.toThrow(TypeError);
    await expect(q.getNowaitBatch(-1)).rejects.toThrow(RangeError);
    await expect(q.putNowaitBatch(5 as unknown as number[])).rejects.toThrow(TypeError);
    await expect(q.shutdown({ gracePeriod: -1 })).rejects.toThrow(/gracePeriod: must be a number/);
    expect(await q.qsize()).toBe(0);
    await q.put(1, { timeout: 1 }); // still usable, and not shut down by the bad call
    expect(await q.get()).toBe(1);
  });

  test("a Queue passed to tasks: a producer and a consumer task share it", async () => {
    const q = new Queue<number>({ maxsize: 2 });
    expect(Object.keys(q)).toEqual(["__warrenQueue"]);
    const items = range(20);
    const consumer = u.consume.remote(q, items.length);
    const producer = u.produce.remote(q, items); // blocks on the full queue until the consumer takes
    expect(await warren.get(consumer, { timeout: 60 })).toEqual(items);
    expect(await warren.get(producer, { timeout: 10 })).toBe(items.length);
    expect(await q.empty()).toBe(true);
  });

  test("a Queue nested in an argument is a Queue in the task, and one returned from a task works here", async () => {
    const q = new Queue<string>({ maxsize: 5 });
    expect(await warren.get(u.probeQueue.remote({ q }))).toEqual({ isQueue: true, maxsize: 5, getNowait: "Empty" });
    expect(await q.getNowait()).toBe("from a task");
    const back = await warren.get(u.echoQueue.remote(q));
    expect(back).toBeInstanceOf(Queue);
    expect(back.maxsize).toBe(5);
    expect(Object.keys(back)).toEqual(["__warrenQueue"]);
    await back.put("via the copy");
    expect(await q.get()).toBe("via the copy");
  });

  test("a blocked get completes when another process puts", async () => {
    const q = new Queue<number>();
    const get = track(q.get());
    expect(await q.empty()).toBe(true);
    expect(get.settled()).toBe(false);
    expect(await warren.get(u.produce.remote(q, [7]), { timeout: 30 })).toBe(1);
    expect(await get.promise).toBe(7);
  });

  test("an actor uses Queues it got in its constructor and in a call", async () => {
    const q = new Queue<string>();
    const other = new Queue<string>();
    const feeder = u.QueueFeeder.remote(q);
    expect(await warren.get(feeder.feed.remote(["a", "b"]), { timeout: 30 })).toBe(2);
    expect(await q.getNowaitBatch(2)).toEqual(["a", "b"]);
    const taken = feeder.take.remote(other); // blocks in the actor until we put
    expect(await other.empty()).toBe(true);
    expect(await pending(taken)).toBe(true);
    await other.put("c");
    expect(await warren.get(taken, { timeout: 30 })).toBe("c");
  });

  test("shutdown ends the actor; the Queue is unusable afterwards", async () => {
    const q = new Queue<number>();
    await q.put(1);
    const actor = q.actor;
    const t0 = Date.now();
    await q.shutdown();
    expect(Date.now() - t0).toBeLessThan(4000); // an idle actor exits before the grace period ends
    await expect(q.get()).rejects.toThrow(/shut down/);
    await expect(q.qsize()).rejects.toThrow(/shut down/);
    expect(await stateOf(actor)).toBe("DEAD"); // shutdown returned once the actor was gone
    await q.shutdown(); // again: nothing to do
  });

  test("shutdown kills an actor still busy after the grace period, and force kills at once", async () => {
    const q = new Queue<number>();
    const blocked = q.get().catch((e) => e);
    expect(await q.empty()).toBe(true);
    const t0 = Date.now();
    await q.shutdown({ gracePeriod: 0.5 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    expect(await blocked).toBeInstanceOf(warren.ActorDiedError);

    expect(await stateOf(q.actor)).toBe("DEAD");

    const forced = new Queue<number>();
    const waiting = forced.get().catch((e) => e);
    expect(await forced.empty()).toBe(true);
    await forced.shutdown({ force: true, gracePeriod: 60 });
    expect(await waiting).toBeInstanceOf(warren.ActorDiedError); // long before any grace period
    await waitForCondition(async () => (await stateOf(forced.actor)) === "DEAD");
  });
});
