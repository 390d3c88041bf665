// The remote functions and actor classes the benchmark cases call, at the top level of a module
// that imports only from "warren": workers load this file by path (through tsx), as they would a
// user's module. Names follow Ray's ray_perf.py (small_value, small_value_batch, work).
import * as warren from "warren";

/** Seconds a get inside a worker may wait before the case fails instead of hanging. */
const GET_TIMEOUT = 60;

/** Ray's `small_value`: the smallest useful task. */
export const smallValue = warren.remote(function small_value() {
  return 0;
});

/** Ray's n:n client task: `n` calls spread over `actors`, then one get of all of them. */
export const work = warren.remote(async function work(actors: warren.ActorHandle<SyncActor>[], n: number) {
  const refs = Array.from({ length: n }, (_, i) => actors[i % actors.length].small_value.remote());
  await warren.get(refs, { timeout: GET_TIMEOUT });
  return n;
});

/** Ray's `Actor`: one sync method, so calls run one at a time unless `maxConcurrency` says more. */
@warren.actor({ numCpus: 0 })
export class SyncActor extends warren.Actor {
  small_value(): number {
    return 0;
  }
  /** Where it runs: shared_actor_creation_per_s measures its host's memory. */
  pid(): number {
    return process.pid;
  }
}

/** Ray's `AsyncActor`: an async method (warren then defaults `maxConcurrency` to 1000, like Ray). */
@warren.actor({ numCpus: 0 })
export class AsyncActor extends warren.Actor {
  async small_value(): Promise<number> {
    return 0;
  }
}

/**
 * Ray's multi-client `Actor.small_value_batch`: a client that is itself an actor, submitting `n`
 * tasks and getting them all. Async because a JavaScript get cannot block.
 */
@warren.actor({ numCpus: 0 })
export class Client extends warren.Actor {
  async small_value_batch(n: number): Promise<number> {
    const refs = Array.from({ length: n }, () => smallValue.remote());
    await warren.get(refs, { timeout: GET_TIMEOUT });
    return n;
  }
}

/** An actor with the default options (its own process, 1 CPU to place it, none held): what actor_creation_per_s creates by the hundred. */
@warren.actor()
export class Counter extends warren.Actor {
  private n = 0;
  incr(): number {
    return ++this.n;
  }
}

/** A large object, made where the case places this task. */
export const bigBuffer = warren.remote(function big_buffer(size: number) {
  return Buffer.alloc(size, 7);
});

/**
 * Gets the object inside `refs` (so the get is timed here, not before the task starts); returns
 * the seconds it took, and this process's resident memory before it and at its peak so far.
 */
export const timedGet = warren.remote(async function timed_get(refs: warren.ObjectRef<Buffer>[]) {
  const rssBefore = process.memoryUsage.rss();
  const start = performance.now();
  const value = await warren.get(refs[0], { timeout: GET_TIMEOUT });
  const seconds = (performance.now() - start) / 1000;
  if (value.length === 0 || value[value.length - 1] !== 7) throw new Error("the object came back wrong");
  return { seconds, rssBefore, peakRss: process.resourceUsage().maxRSS * 1024 };
});

/** The dot product the native cases compare (bench/native.ts): plain JavaScript. */
export function dotJs(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

export const dotTask = warren.remote(function dot_js(a: Float64Array, b: Float64Array) {
  return dotJs(a, b);
});
