// The work the outage tests run through a broker outage, and what they count: every value of a
// stream of sync tasks, a pipelined batch and a task running across the outage; actor calls,
// executed exactly once (a counter's final value and the values it returned), on an actor of its
// own process and on a shared one (its mailbox on a channel of its host's); an object put before.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as warren from "warren";
import { waitForCondition } from "warren/testing";
import { Counter } from "./fixtures/actors";
import { add, sleep, tally } from "./fixtures/tasks";

const MiB = 1 << 20;

/** What a run of work saw: values received, and what the actor returned. */
interface Counted {
  syncTasks: number;
  pipelined: number;
  slow: number;
  actorValues: number[];
  actorFinal: number;
  /** What the shared counter returned to the batch of calls out at the outage, and its final value. */
  sharedValues: number[];
  sharedFinal: number;
  object: number;
  /** Of the queued batch (tasks of 20 ms, most still queued at the outage): how many ran more than once. */
  queuedRanTwice: number;
}

const SYNC = 40;
const PIPELINED = 200;
const ACTOR_SYNC = 40;
const ACTOR_PIPELINED = 100;
const QUEUED = 100;

/** Runs the work; `outage` is called once it is under way, and the work goes on through it. */
export async function countThrough(outage: () => Promise<void>): Promise<Counted> {
  const object = warren.put(Buffer.alloc(2 * MiB, 7)); // in the node's LMDB, not inline
  const counter = Counter.remote(0);
  const shared = Counter.options({ process: "shared" }).remote(0);
  expect(await warren.get([counter.get_.remote(), shared.get_.remote()])).toEqual([0, 0]);
  let progress = 0;
  const syncTasks = (async () => {
    let ok = 0;
    for (let i = 0; i < SYNC; i++) if ((await warren.get(add.remote(i, 1))) === i + 1) { ok++; progress++; }
    return ok;
  })();
  const actorSync = (async () => {
    const values: number[] = [];
    for (let i = 0; i < ACTOR_SYNC; i++) { values.push(await warren.get(counter.increment.remote())); progress++; }
    return values;
  })();
  await waitForCondition(() => progress >= 10, 30);
  // Out when the broker goes: a batch, a task that runs across the outage, a batch of calls.
  const batch = warren.get(Array.from({ length: PIPELINED }, (_, i) => add.remote(i, 2)));
  const slow = warren.get(sleep.remote(2));
  const marks = fs.mkdtempSync(path.join(os.tmpdir(), "warren-outage-"));
  const queued = warren.get(Array.from({ length: QUEUED }, (_, i) => tally.remote(path.join(marks, String(i)), i, 20)));
  const actorBatch = warren.get(Array.from({ length: ACTOR_PIPELINED }, () => counter.increment.remote()));
  const sharedBatch = warren.get(Array.from({ length: ACTOR_PIPELINED }, () => shared.increment.remote()));
  // Once the first has started, the batch is published (and, in durable mode, confirmed): the rest wait in the queue.
  await waitForCondition(() => fs.readdirSync(marks).length > 0, 30);
  await outage();
  const [sync, values, batched, slept, actorBatched, ranQueued, sharedValues] = await Promise.all([syncTasks, actorSync, batch, slow, actorBatch, queued, sharedBatch]);
  const bytes = (await warren.get(object)) as Buffer;
  const runs = ranQueued.map((i) => fs.readFileSync(path.join(marks, String(i)), "utf8").length);
  fs.rmSync(marks, { recursive: true, force: true });
  return {
    syncTasks: sync,
    pipelined: batched.filter((v, i) => v === i + 2).length,
    slow: slept,
    actorValues: [...values, ...actorBatched].sort((a, b) => a - b),
    actorFinal: await warren.get(counter.get_.remote()),
    sharedValues,
    sharedFinal: await warren.get(shared.get_.remote()),
    object: bytes.length === 2 * MiB && bytes.every((b) => b === 7) ? bytes.length : -1,
    queuedRanTwice: ranQueued.every((v, i) => v === i) ? runs.filter((n) => n > 1).length : -1,
  };
}

export function expectNothingLost(c: Counted): void {
  expect(c.syncTasks).toBe(SYNC);
  expect(c.pipelined).toBe(PIPELINED);
  expect(c.slow).toBe(2);
  // Exactly once: every increment ran once, so the values are 1..N and the counter ends at N.
  const calls = ACTOR_SYNC + ACTOR_PIPELINED;
  expect(c.actorValues).toEqual(Array.from({ length: calls }, (_, i) => i + 1));
  expect(c.actorFinal).toBe(calls);
  expect(c.sharedValues).toEqual(Array.from({ length: ACTOR_PIPELINED }, (_, i) => i + 1));
  expect(c.sharedFinal).toBe(ACTOR_PIPELINED);
  expect(c.object).toBe(2 * MiB);
  expect(c.queuedRanTwice).toBeGreaterThanOrEqual(0); // every queued task came back with its value
}

