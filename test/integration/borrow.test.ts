// Borrower reference counting (issue 12): objects given to tasks and actors are freed once every
// process that could reach them has dropped them, and not before. Real broker, real LMDB store.
import * as v8 from "node:v8";
import * as vm from "node:vm";
import * as warren from "warren";
import { SignalActor } from "warren/actors";
import { waitForCondition } from "warren/testing";
import { currentRuntime } from "../../src/core/current";
import { CORE_DEFAULTS } from "../../src/core/defaults";
import { Keeper, copy, size, sizeOfFirst } from "../fixtures/borrow";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

/** Stored in LMDB, not inline. */
const VALUE = CORE_DEFAULTS.inlineMax + 1024;
const TASKS = 10_000;
const BATCH = 500;

/** A GC in this process, and a turn for the finalizers it queued. */
async function collect(): Promise<void> {
  gc();
  await new Promise((r) => setImmediate(r));
}

const owned = () => currentRuntime().objects.owned;
const stored = () => currentRuntime().objects.localStore().count();

beforeAll(() => warren.init({ numCpus: 2 }));
afterAll(() => warren.shutdown());

/** One batch of tasks, each given a ref of its own put; the refs die with this function's frame. */
async function batch(n: number): Promise<void> {
  const refs = Array.from({ length: BATCH }, () => warren.put(Buffer.alloc(VALUE, n)));
  // Half the batches pass the ref itself (the task pins it), half inside an array (the worker borrows it).
  const tasks = n % 2 === 0 ? refs.map((r) => size.remote(r)) : refs.map((r) => sizeOfFirst.remote([r]));
  expect(new Set(await warren.get(tasks))).toEqual(new Set([VALUE]));
}

test(`${TASKS} tasks each given a stored put ref leave the owner table and the store flat once the refs are dropped`, async () => {
  let most = 0;
  for (let n = 0; n < TASKS / BATCH; n++) {
    await batch(n);
    await collect();
    most = Math.max(most, stored());
  }
  await waitForCondition(async () => {
    await collect();
    return owned().size <= 5 && stored() <= 5;
  }, 30);
  // Each batch's pinned refs are freed before the next is made, borrowed ones within a GC of the workers.
  expect(most).toBeLessThan(3 * BATCH);
}, 300_000);

test("an actor that keeps a borrowed ref in its state can get it after its owner dropped its own, and its release frees it", async () => {
  let x: warren.ObjectRef<Buffer> | undefined = warren.put(Buffer.alloc(VALUE, 7));
  let z: warren.ObjectRef<Buffer> | undefined = warren.put(Buffer.alloc(VALUE, 6));
  const id = x.hex();
  const keeper = Keeper.remote();
  const born = Keeper.remote([z]); // kept by its constructor
  expect(await warren.get(keeper.keep.remote([x]))).toBe(true);
  x = z = undefined;
  await collect();
  await warren.get(Array.from({ length: 1000 }, (_, i) => size.remote(Buffer.alloc(i % 7))));
  await collect();
  expect(owned().rows().find((r) => r.object_id === id)).toMatchObject({ borrowers: 1 });
  expect(await warren.get([keeper.keptSize.remote(), born.keptSize.remote()])).toEqual([VALUE, VALUE]);
  await warren.get(keeper.forget.remote());
  // Released once the actor's worker collects it (a GC of its own within a few seconds).
  await waitForCondition(() => !owned().has(id), 30);
  await Promise.all([warren.kill(keeper), warren.kill(born)]);
}, 120_000);

test("a borrowed ref passed on to a further task stays readable after the owner and the borrower dropped it", async () => {
  const signal = SignalActor.remote();
  const relay = Keeper.remote();
  let x: warren.ObjectRef<Buffer> | undefined = warren.put(Buffer.alloc(VALUE, 8));
  // y goes with x and is not passed on: its release shows that the relay collected both.
  let y: warren.ObjectRef<Buffer> | undefined = warren.put(Buffer.alloc(VALUE, 9));
  const [xId, yId] = [x.hex(), y.hex()];
  const [inner] = await warren.get(relay.relay.remote([x, y], signal));
  x = y = undefined;
  await waitForCondition(async () => {
    await collect();
    return !owned().has(yId);
  }, 30);
  expect(owned().has(xId)).toBe(true);
  await warren.get(signal.send.remote());
  expect(await warren.get(inner)).toBe(VALUE);
  await Promise.all([warren.kill(relay), warren.kill(signal)]);
}, 120_000);

/**
 * A put and a task that copies it into a stored result, and a put given to nobody (its freeing
 * shows that this process's finalizers ran); the puts' refs die with this function's frame.
 */
function copyOfPut(): { xId: string; witness: string; copied: warren.ObjectRef<Uint8Array>[] } {
  const x = warren.put(Buffer.alloc(VALUE, 5));
  return { xId: x.hex(), witness: warren.put(1).hex(), copied: [copy.remote(x)] };
}

test("a task's argument stays while the task's stored result may have to be made again (lineage), and goes with that result", async () => {
  const { xId, witness, copied } = copyOfPut();
  const copiedId = copied[0].hex();
  await warren.wait(copied);
  expect(owned().peek(copiedId)).toMatchObject({ node: expect.any(String) }); // stored, so kept as lineage
  await waitForCondition(async () => {
    await collect();
    return !owned().has(witness);
  });
  expect(owned().has(xId)).toBe(true);
  copied.pop();
  await waitForCondition(async () => {
    await collect();
    return !owned().has(xId) && !owned().has(copiedId);
  }, 30);
});
