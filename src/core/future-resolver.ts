/**
 * core: `get` and `wait` (Ray's future_resolver): turning refs into values, from wherever the
 * objects are, under one timeout. A `get` that must wait tells the worker it runs in (blockHooks),
 * so its node lends the task's CPU meanwhile. An object lost with its node is made again from
 * lineage when this process owns it (task-manager.ts).
 */
import { GetTimeoutError, ObjectLostError } from "../errors";
import { decode } from "../serialization";
import type { ObjectRef } from "../objects/ref";
import type { StoredObject } from "../wire/messages";
import type { TakeBack } from "./objects";
import type { Runtime } from "./runtime";

/** Set by a worker: told when a `get` blocks and unblocks, so the node can lend the CPU. */
export interface BlockHooks {
  block(): void;
  unblock(): void;
}

export class FutureResolver {
  blockHooks?: BlockHooks;

  constructor(private readonly rt: Runtime) {}

  /**
   * The values of `refs`, taken in order as a loop of awaits would (the first error in order is
   * thrown), but with one promise for the whole get: values of refs this process owns arrive by
   * callback as their results do, and inline ones (most) are decoded at once. On a sync round trip
   * each promise between a result and the caller was a few microseconds with the caches cold.
   * The timeout covers the whole get: waiting for objects and fetching them from other nodes.
   * With `one`, it resolves to the single ref's value rather than a list. However it ends, it
   * takes back its callbacks, so polling a pending ref with a short timeout costs nothing more each time.
   */
  get(refs: ObjectRef[], timeoutSec: number | undefined, one: boolean): Promise<unknown> {
    const objects = this.rt.objects;
    const n = refs.length;
    const out: unknown[] = new Array(n);
    const where: (StoredObject | undefined)[] = new Array(n);
    let next = 0;
    let fetching = false;
    /** Set once the get waits for an object, with what takes each wait back. */
    let waits: TakeBack[] | undefined;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    return new Promise<unknown>((resolve, reject) => {
      const end = (err?: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (waits) {
          for (const off of waits) off();
          this.blockHooks?.unblock();
        }
        if (err === undefined) resolve(one ? out[0] : out);
        else reject(err);
      };
      const advance = () => {
        while (!done && !fetching && next < n) {
          const w = where[next];
          if (!w) return;
          const i = next;
          if ("inline" in w) {
            try {
              out[i] = decode(w.inline);
            } catch (err) {
              return end(err);
            }
            next++;
            continue;
          }
          fetching = true;
          objects.materialize(w, refs[i].hex()).catch((err) => this.remake(refs[i], err)).then((v) => {
            out[i] = v;
            next++;
            fetching = false;
            advance();
          }, end);
          return;
        }
        if (next === n) end();
      };
      for (let i = 0; i < n; i++) {
        const now = objects.locate(refs[i], (w) => {
          where[i] = w;
          advance();
        });
        if (typeof now === "function") (waits ??= []).push(now);
        else where[i] = now;
      }
      if (waits) this.blockHooks?.block();
      advance();
      if (!done && timeoutSec !== undefined) {
        timer = setTimeout(() => end(new GetTimeoutError(
          `get timed out after ${timeoutSec}s: ${n - next} of ${n} object(s) not ready or not yet fetched (first: ${refs[next]})`,
        )), timeoutSec * 1000);
      }
    });
  }

  /**
   * An object this process owns was lost with the node that held it: make it again from lineage
   * and read the new copy. Anything else rethrows the loss.
   */
  private async remake(ref: ObjectRef, lost: unknown): Promise<unknown> {
    if (!(lost instanceof ObjectLostError) || !this.rt.tasks.resubmitFinished(ref.taskId)) throw lost;
    const objects = this.rt.objects;
    return objects.materialize(await objects.located(ref), ref.hex());
  }

  /**
   * Waits until `numReturns` of `refs` are ready or `timeoutSec` passes. The refs this process
   * owns that are ready now are found first, in input order, stopping at `numReturns`: Ray's
   * wait-for-each loop finds its next ref near the front, so a call costs about a copy of the
   * list, not a subscription per ref. Only a wait that must wait subscribes, and takes every
   * subscription back when it returns.
   */
  async wait(refs: ObjectRef[], numReturns: number, timeoutSec?: number): Promise<[ObjectRef[], ObjectRef[]]> {
    const owned = this.rt.objects.owned;
    const ready: number[] = [];
    for (let i = 0; i < refs.length && ready.length < numReturns; i++) if (owned.peek(refs[i].hex())) ready.push(i);
    if (ready.length < numReturns && timeoutSec !== 0) await this.waitMore(refs, ready, numReturns, timeoutSec);
    ready.sort((a, b) => a - b);
    ready.length = Math.min(ready.length, numReturns);
    // The rest, in input order: the runs between the ready ones, copied whole.
    const runs: ObjectRef[][] = [];
    let from = 0;
    for (const i of ready) {
      runs.push(refs.slice(from, i));
      from = i + 1;
    }
    runs.push(refs.slice(from));
    return [ready.map((i) => refs[i]), runs.length === 1 ? runs[0] : ([] as ObjectRef[]).concat(...runs)];
  }

  /** Subscribes to the refs not yet in `ready` until it holds `numReturns` of them or the timeout passes. */
  private async waitMore(refs: ObjectRef[], ready: number[], numReturns: number, timeoutSec?: number): Promise<void> {
    const objects = this.rt.objects;
    const counted = new Uint8Array(refs.length);
    for (const i of ready) counted[i] = 1;
    const takeBack: TakeBack[] = [];
    let timer: NodeJS.Timeout | undefined;
    let active = true;
    await new Promise<void>((resolve) => {
      const arrived = (i: number) => {
        if (!active || counted[i]) return;
        counted[i] = 1;
        ready.push(i);
        if (ready.length >= numReturns) resolve();
      };
      for (let i = 0; i < refs.length && ready.length < numReturns; i++) {
        if (counted[i]) continue;
        const now = objects.locate(refs[i], () => arrived(i));
        if (typeof now === "function") takeBack.push(now);
        else arrived(i);
      }
      if (ready.length >= numReturns) resolve();
      else if (timeoutSec !== undefined) timer = setTimeout(resolve, timeoutSec * 1000);
    });
    active = false;
    clearTimeout(timer);
    for (const off of takeBack) off();
  }
}
