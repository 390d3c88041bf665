// Remote tasks, ObjectRefs and the object store against the real broker and real LMDB files.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as warren from "warren";
import { SignalActor } from "warren/actors";
import * as t from "../fixtures/tasks";
import { waitForCondition } from "warren/testing";
import { currentRuntime } from "../../src/core/current";
import { captureStdout } from "../helpers";

let info: warren.ClusterInfo;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "warren-tasks-"));

beforeAll(async () => {
  info = await warren.init({ numCpus: 2 });
});

afterAll(async () => {
  await warren.shutdown();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("tasks", () => {
  test("a remote function runs on a worker and get returns its value", async () => {
    const ref = t.add.remote(1, 2);
    expect(ref).toBeInstanceOf(warren.ObjectRef);
    expect(String(ref)).toMatch(/^ObjectRef\([0-9a-f]{40}\)$/);
    expect(typeof (ref as unknown as { then?: unknown }).then).toBe("undefined");
    expect(await warren.get(ref)).toBe(3);
    expect(await warren.get(t.pid.remote())).not.toBe(process.pid);
  });

  test("get of a list returns values in input order", async () => {
    const refs = [3, 1, 2].map((s) => t.sleep.remote(s / 20));
    expect(await warren.get(refs)).toEqual([0.15, 0.05, 0.1]);
  });

  test("plain JavaScript modules work as well as TypeScript ones", async () => {
    const { double } = require("../fixtures/plain.js");
    expect(await warren.get(double.remote(21))).toBe(42);
  });

  test("a remote function calls itself through its own name (a named function expression) in its workers", async () => {
    const { fib, countDown } = require("../fixtures/recursive.js");
    expect(await warren.get(fib.remote(6), { timeout: 60 })).toBe(8);
    expect(await warren.get(countDown.remote(2), { timeout: 30 })).toEqual(["countDown_0", "countDown_1", "countDown"]);
  });

  test("structured-clone values survive the round trip", async () => {
    const value = {
      buf: Buffer.from("hi"), arr: new Float64Array([1.5, 2.5]), map: new Map([["a", 1]]),
      set: new Set([1, 2]), date: new Date(1_000), big: 2n ** 70n, nested: [{ x: null, y: undefined }],
    };
    const back = (await warren.get(t.echo.remote(value))) as typeof value;
    expect(Buffer.from(back.buf as Uint8Array).toString()).toBe("hi");
    expect(back.arr).toEqual(new Float64Array([1.5, 2.5]));
    expect(back.map.get("a")).toBe(1);
    expect([...back.set]).toEqual([1, 2]);
    expect(back.date.getTime()).toBe(1000);
    expect(back.big).toBe(2n ** 70n);
    expect(back.nested).toEqual([{ x: null, y: undefined }]);
  });

  test("a ref passed as a top-level argument is resolved before the task runs", async () => {
    const a = t.add.remote(1, 2);
    expect(await warren.get(t.add.remote(a, 10))).toBe(13);
    const p = warren.put(5);
    expect(await warren.get(t.add.remote(p, p))).toBe(10);
  });

  test("refs nested in arguments stay refs and the task can get them", async () => {
    const refs = [t.add.remote(1, 1), warren.put(3), t.add.remote(2, 2)];
    expect(await warren.get(t.sumRefs.remote({ refs }))).toBe(9);
  });

  test("nested tasks: g returns four refs made by f, h returns their values", async () => {
    const refs = await warren.get(t.g.remote());
    expect(refs).toHaveLength(4);
    for (const r of refs) expect(r).toBeInstanceOf(warren.ObjectRef);
    expect(await warren.get(refs)).toEqual([1, 1, 1, 1]);
    expect(await warren.get(t.h.remote())).toEqual([1, 1, 1, 1]);
  });

  test("numReturns splits a returned array into several refs", async () => {
    const [id1, id2] = t.range.options({ numReturns: 2 }).remote(2);
    expect(await warren.get(id1)).toBe(0);
    expect(await warren.get(id2)).toBe(1);
    const wrong = t.range.options({ numReturns: 3 }).remote(2);
    await expect(warren.get(wrong[0])).rejects.toThrow(/numReturns: 3 but returned an array of 2/);
  });

  test("a task's name is its worker's process title while it runs", async () => {
    expect(await warren.get(t.title.options({ name: "special_f" }).remote())).toBe("warren::special_f");
    expect(await warren.get(t.title.remote())).toBe("warren::title");
  });

  test("a worker's title goes back to warren::IDLE once it has no task for a while", async () => {
    const pid = await warren.get(t.pid.remote());
    const title = () => fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0];
    await waitForCondition(() => title() === "warren::IDLE"); // while it ran: the test above
  });

  test("the runtime context names the task, its node and its job", async () => {
    const c = await warren.get(t.context.options({ name: "ctx" }).remote());
    expect(c.taskName).toBe("ctx");
    expect(c.taskId).toMatch(/^[0-9a-f]{32}$/);
    expect(c.nodeId).toBe(info.nodeId);
    expect(c.jobId).toBe(info.jobId);
  });

  test("worker output reaches the driver prefixed with the task name and pid", async () => {
    let workerPid = 0;
    const out = await captureStdout(async () => {
      workerPid = await warren.get(t.pid.remote());
      await warren.get(t.say.remote("hello from a worker"));
    });
    const line = out.split("\n").find((l) => l.includes("hello from a worker"));
    expect(line).toMatch(/^\(say pid=\d+\) hello from a worker$/);
    expect(Number(/pid=(\d+)/.exec(line!)![1])).toBeGreaterThan(0);
    expect(workerPid).toBeGreaterThan(0);
  });
});

describe("arguments", () => {
  test("are copied when .remote() is called, also for a task that waits for a ref argument", async () => {
    const list = [1, 2];
    const now = t.echo.remote(list);
    const later = t.pair.remote(t.sleep.remote(0.2), list);
    list.push(3);
    expect(await warren.get(now)).toEqual([1, 2]);
    expect(await warren.get(later)).toEqual([0.2, [1, 2]]);
  });
});

describe("objects", () => {
  test("put returns a ref synchronously and get reads it back", async () => {
    const ref = warren.put({ a: [1, 2, 3] });
    expect(ref).toBeInstanceOf(warren.ObjectRef);
    expect(await warren.get(ref)).toEqual({ a: [1, 2, 3] });
  });

  test("large values go to the node's store, not through the broker: LMDB, or a file beside it from 8 MiB", async () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 7);
    const ref = warren.put(big);
    const where = currentRuntime().objects.owned.peek(ref.hex())!;
    expect(where).toEqual({ node: info.nodeId, size: expect.any(Number) });
    expect(await warren.get(t.length.remote(ref))).toBe(big.length);

    const made = t.bytes.remote(4 * 1024 * 1024, 9);
    const value = await warren.get(made);
    expect(currentRuntime().objects.owned.peek(made.hex())).toEqual({ node: info.nodeId, size: expect.any(Number) });
    expect(value.length).toBe(4 * 1024 * 1024);
    expect(value[12345]).toBe(9);
    const store = path.join(os.tmpdir(), "warren", `session_${info.cluster}`, "objects.lmdb");
    expect(fs.statSync(store).isFile()).toBe(true);
    expect(fs.readdirSync(`${store}.large`)).toContain(ref.hex());
    expect(fs.readdirSync(`${store}.large`)).not.toContain(made.hex());
    expect(Buffer.compare(await warren.get(ref), big)).toBe(0);
  });

  test("small values ride inline", async () => {
    const ref = t.add.remote(2, 2);
    await warren.get(ref);
    expect(currentRuntime().objects.owned.peek(ref.hex())).toHaveProperty("inline");
  });

  test("get with a timeout throws GetTimeoutError", async () => {
    const ref = t.sleep.remote(3);
    const err = await warren.get(ref, { timeout: 0.2 }).catch((e) => e);
    expect(err).toBeInstanceOf(warren.GetTimeoutError);
    expect(err).toBeInstanceOf(warren.WarrenError);
    expect(err.name).toBe("GetTimeoutError");
    await warren.cancel(ref, { force: true });
  });

  test("a get that times out takes back its waiters: polling a pending ref, owned or borrowed, does not pile them up", async () => {
    const signal = SignalActor.remote();
    const owned = t.waitForSignal.remote(signal);
    const [borrowed] = await warren.get(t.borrowWaitForSignal.remote(signal));
    const objects = currentRuntime().objects;
    const waiters = () => [
      objects.owned["entries"].get(owned.hex())?.waiters?.size,
      objects["requests"].get(borrowed.hex())?.waiters.size,
    ];
    for (let i = 0; i < 300; i++) {
      await expect(warren.get([owned, borrowed], { timeout: 0.01 })).rejects.toBeInstanceOf(warren.GetTimeoutError);
    }
    expect(waiters()).toEqual([0, 0]);
    await warren.get(signal.send.remote());
    expect(await warren.get([owned, borrowed], { timeout: 30 })).toEqual(["sent", "sent"]);
  });

  test("wait returns ready and not-ready refs in input order", async () => {
    const slow = t.sleep.remote(3);
    const fast = [t.add.remote(1, 0), t.add.remote(2, 0)];
    const [ready, notReady] = await warren.wait([slow, ...fast], { numReturns: 2, timeout: 2 });
    expect(ready.map(String)).toEqual(fast.map(String));
    expect(notReady.map(String)).toEqual([String(slow)]);
    const [r2, n2] = await warren.wait([slow], { timeout: 0.1 });
    expect(r2).toEqual([]);
    expect(n2).toHaveLength(1);
    await warren.cancel(slow, { force: true });
  });

  test("wait rejects bad arguments clearly", async () => {
    const r = warren.put(1);
    await expect(warren.wait([r, r])).rejects.toThrow(/same ObjectRef twice/);
    await expect(warren.wait([r], { numReturns: 2 })).rejects.toThrow(warren.OptionsError);
    await expect(warren.get("nope" as never)).rejects.toThrow(/get\(\) takes ObjectRefs/);
  });
});

describe("cancel", () => {
  test("a task that cannot be placed is cancelled before it runs", async () => {
    const ref = t.add.options({ resources: { Nowhere: 1 } }).remote(1, 2);
    await warren.cancel(ref);
    await expect(warren.get(ref)).rejects.toBeInstanceOf(warren.TaskCancelledError);
  });

  test("a queued task behind busy CPUs never runs once cancelled", async () => {
    const busy = [t.sleep.remote(1), t.sleep.remote(1)];
    const marker = path.join(tmp, "queued");
    const queued = t.touch.remote(marker);
    await warren.cancel(queued);
    await expect(warren.get(queued)).rejects.toBeInstanceOf(warren.TaskCancelledError);
    await warren.get(busy);
    expect(await warren.get(t.add.remote(1, 1))).toBe(2); // the node moved on past it
    expect(fs.existsSync(marker)).toBe(false);
  });

  test("force kills a running task without retrying it", async () => {
    const marker = path.join(tmp, "force-started");
    const ref = t.touchThenSleep.options({ maxRetries: 3 }).remote(marker, 30);
    await waitForCondition(() => fs.existsSync(marker));
    const started = Date.now();
    await warren.cancel(ref, { force: true });
    await expect(warren.get(ref)).rejects.toBeInstanceOf(warren.TaskCancelledError);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await warren.get(t.add.remote(2, 3))).toBe(5);
  });
});

describe("errors", () => {
  test("a task that throws gives TaskError with the original error rebuilt as cause", async () => {
    const err = await warren.get(t.throwType.remote()).catch((e) => e);
    expect(err).toBeInstanceOf(warren.TaskError);
    expect(err.functionName).toBe("throwType");
    expect(err.pid).toBeGreaterThan(0);
    expect(err.nodeId).toBe(info.nodeId);
    expect(err.remoteStack).toMatch(/TypeError: bad type/);
    expect(err.cause).toBeInstanceOf(TypeError);
    expect(err.cause.message).toBe("bad type");
    expect(err.message).toMatch(/throwType/);
  });

  test("a custom error keeps its name, message, stack and fields", async () => {
    const err = await warren.get(t.throwCustom.remote()).catch((e) => e);
    expect(err).toBeInstanceOf(warren.TaskError);
    expect(err.cause).toBeInstanceOf(t.CustomError);
    expect(err.cause.name).toBe("CustomError");
    expect(err.cause.message).toBe("custom failure");
    expect(err.cause.code).toBe(42);
    expect(err.cause.stack).toMatch(/custom failure/);
  });

  test("a user's error class exported by the task's module comes back as itself, through a nested task too", async () => {
    const err = await warren.get(t.overdraw.remote(5)).catch((e) => e);
    expect(err.cause).toBeInstanceOf(t.InsufficientFunds);
    expect(err.cause.balance).toBe(5);
    expect(err.cause.name).toBe("Error");
    expect(err.cause.message).toBe("balance 5 is too low");
    const nested = await warren.get(t.add.remote(t.overdraw.remote(7) as never, 1)).catch((e) => e);
    expect(nested.cause.cause).toBeInstanceOf(t.InsufficientFunds);
    expect(nested.cause.cause.balance).toBe(7);
  });

  test("init() inside a task is a clear error that reaches the driver", async () => {
    const err = await warren.get(t.initInside.remote()).catch((e) => e);
    expect(err).toBeInstanceOf(warren.TaskError);
    expect(err.message).toMatch(/warren.init\(\) was called inside a task or actor.*Call init\(\) once, in the driver program/s);
  });

  test("an error propagates to tasks that take the failed ref as an argument", async () => {
    const failed = t.throwType.remote();
    const err = await warren.get(t.add.remote(failed as never, 1)).catch((e) => e);
    expect(err).toBeInstanceOf(warren.TaskError);
    expect(err.cause).toBeInstanceOf(warren.TaskError);
    expect(err.cause.cause).toBeInstanceOf(TypeError);
  });

  test("an unserializable argument is a SerializationError naming it", () => {
    expect(() => t.echo.remote((() => 1) as never)).toThrow(warren.SerializationError);
    expect(() => t.add.remote(1, (() => 1) as never)).toThrow(/argument 1 of add/);
  });

  test("invalid options list every bad field", () => {
    let err: unknown;
    try {
      t.add.options({ numCpus: -1, numReturns: 1.5, resources: { CPU: 1 }, bogus: true } as never);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(warren.OptionsError);
    const msg = (err as Error).message;
    for (const field of ["numCpus", "numReturns", "resources", "bogus"]) expect(msg).toContain(field);
  });

  test("remote() without a function is a clear error", () => {
    expect(() => warren.remote(42 as never)).toThrow(/takes a function/);
  });
});

describe("scheduling", () => {
  test("tasks submitted one at a time stay on one warm worker: leases take tasks in line, by priority", async () => {
    for (let i = 0; i < 5; i++) await warren.get(t.pid.remote());
    const pids: number[] = [];
    for (let i = 0; i < 40; i++) pids.push(await warren.get(t.pid.remote()));
    const switches = pids.filter((p, i) => i > 0 && p !== pids[i - 1]).length;
    // Taking turns it would be about 20. A lease lets go after 10 ms without a task, which a
    // loaded machine's round trip passes now and then: a few switches, not one a task.
    expect(switches).toBeLessThanOrEqual(6);
  });

  test("after a run of short tasks, a burst of slow ones still spreads over the CPUs", async () => {
    await warren.get(Array.from({ length: 300 }, () => t.pid.remote())); // leases now take 32 at a time
    const pids = await warren.get(Array.from({ length: 10 }, () => t.spin.remote(100)));
    const perWorker = [...new Set(pids)].map((p) => pids.filter((q) => q === p).length);
    expect(perWorker).toHaveLength(2);
    expect(Math.min(...perWorker)).toBeGreaterThanOrEqual(3); // hoarded by one lease: 10 and 0
  });
});

describe("worker crashes", () => {
  test("a SIGKILLed worker's task is retried on a new worker", async () => {
    const marker = path.join(tmp, "crash-retry");
    expect(await warren.get(t.crashOnce.options({ maxRetries: 1 }).remote(marker))).toBe("survived");
    const firstPid = Number(fs.readFileSync(marker, "utf8"));
    expect(() => process.kill(firstPid, 0)).toThrow();
  });

  test("without retries left the caller gets WorkerCrashedError, and the node goes on", async () => {
    const marker = path.join(tmp, "crash-final");
    const err = await warren.get(t.crashOnce.options({ maxRetries: 0 }).remote(marker)).catch((e) => e);
    expect(err).toBeInstanceOf(warren.WorkerCrashedError);
    expect(err.message).toMatch(/crashOnce.*SIGKILL.*maxRetries is 0/s);
    expect(await warren.get(t.add.remote(1, 1))).toBe(2);
  });
});

describe("task lifecycle", () => {
  test("a task waits in PENDING_ARGS_AVAIL for its arguments, then finishes", async () => {
    const slow = t.sleep.remote(0.5);
    const dependent = t.echo.remote(slow);
    expect(currentRuntime().tasks.state(dependent.taskId)).toBe("PENDING_ARGS_AVAIL");
    expect(await warren.get(dependent)).toBe(0.5);
    expect(currentRuntime().tasks.state(dependent.taskId)).toBe("FINISHED");
    await warren.get(t.throwType.remote()).catch(() => undefined);
    const failed = t.throwType.remote();
    await expect(warren.get(failed)).rejects.toThrow();
    expect(currentRuntime().tasks.state(failed.taskId)).toBe("FAILED");
  });
});
