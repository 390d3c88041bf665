// Resources on one node: GPUs and their ids, accelerator types, what a task holds, and the CPU a
// task lends while it waits in get().
import * as warren from "warren";
import { NVIDIA_TESLA_V100 } from "warren/accelerators";
import { GpuHolder, f, fibonacci, g, gpuParent, gpus } from "../fixtures/resources";

beforeAll(() => warren.init({ numCpus: 1, numGpus: 2, resources: { "accelerator_type:V100": 1 } }));
afterAll(() => warren.shutdown());

test("two concurrent 1-GPU tasks get different GPUs, each visible to CUDA", async () => {
  const [a, b] = await warren.get([gpus.options({ numGpus: 1, numCpus: 0 }).remote(0.5), gpus.options({ numGpus: 1, numCpus: 0 }).remote(0.5)]);
  expect(a.ids).toHaveLength(1);
  expect(b.ids).toHaveLength(1);
  expect(a.ids[0]).not.toBe(b.ids[0]);
  expect(a.visible).toBe(String(a.ids[0]));
  expect(b.visible).toBe(String(b.ids[0]));
  expect(a.assigned).toEqual({ GPU: 1 });
});

test("a 2-GPU task gets both; fractional tasks share one GPU", async () => {
  const both = await warren.get(gpus.options({ numGpus: 2, numCpus: 0 }).remote(0));
  expect(both.ids.sort()).toEqual([0, 1]);
  expect(both.visible).toBe("0,1");
  const halves = await warren.get([gpus.options({ numGpus: 0.5, numCpus: 0 }).remote(0.3), gpus.options({ numGpus: 0.5, numCpus: 0 }).remote(0.3)]);
  expect(halves[0].ids).toEqual(halves[1].ids);
});

test("a task without GPUs sees none; the driver has no GPU ids", async () => {
  const none = await warren.get(gpus.remote(0));
  expect(none.ids).toEqual([]);
  expect(none.visible).toBeNull();
  expect(none.assigned).toEqual({ CPU: 1 });
  expect(warren.getGpuIds()).toEqual([]);
});

test("an actor keeps its GPU for its life", async () => {
  const a = GpuHolder.remote();
  const first = await warren.get(a.ids.remote());
  expect(first).toHaveLength(1);
  const other = await warren.get(gpus.options({ numGpus: 1, numCpus: 0 }).remote(0));
  expect(other.ids).not.toEqual(first);
  expect(await warren.get(a.ids.remote())).toEqual(first);
  await warren.kill(a);
});

test("acceleratorType places on a node with that accelerator; another type is infeasible", async () => {
  const ok = await warren.get(gpus.options({ numGpus: 1, numCpus: 0, acceleratorType: NVIDIA_TESLA_V100 }).remote(0));
  expect(ok.assigned).toEqual({ GPU: 1, "accelerator_type:V100": 0.001 });
  const never = gpus.options({ numGpus: 1, acceleratorType: "A100" }).remote(0);
  const [ready] = await warren.wait([never], { timeout: 0.5 });
  expect(ready).toEqual([]);
  await warren.cancel(never);
});

test("on one CPU, a task waiting for its child lends its CPU so the child runs", async () => {
  expect(await warren.get(g.remote(), { timeout: 20 })).toBe(1);
  // fib(10) keeps dozens of tasks waiting at once, each holding its own worker process (as in
  // Ray), so on a 2-core machine most of its time is spent starting workers.
  expect(await warren.get(fibonacci.remote(10), { timeout: 150 })).toBe(55);
  expect(await warren.get(f.remote())).toBe(1);
}, 180_000);

test("a task waiting in get() keeps its GPU", async () => {
  // The parent holds both GPUs and waits for a child that needs one: were the GPUs lent like the
  // CPU is, the child would run; they are not, so its get times out.
  expect(await warren.get(gpuParent.options({ numGpus: 2, numCpus: 0 }).remote())).toBe("GetTimeoutError");
  expect((await warren.get(gpus.options({ numGpus: 1, numCpus: 0 }).remote(0))).ids).toHaveLength(1);
});
