/**
 * The benchmark's cases, in the order they run: the limits (bare amqplib round trips, memcpy)
 * first, then warren's, named as Ray's microbenchmark. A case says what it measures, the limit it
 * is judged against and its target; its `setup` hands the timer a `Running` (the op, its
 * multiplier, a teardown). An actor case kills its actors and waits until they are dead, so the
 * next case does not carry their teardown.
 */
import { fork } from "node:child_process";
import * as net from "node:net";
import * as path from "node:path";
import * as warren from "warren";
import { type Context, FAR_NODE } from "./context";
import { Running, tick } from "./timing";
import { AsyncActor, Client, Counter, SyncActor, bigBuffer, smallValue, timedGet, work } from "./workload";
import { procs } from "./memory";
import { NATIVE_CASES } from "./native";

/** A get that waits longer than this fails the case instead of hanging the run. */
const GET_TIMEOUT = 30;
/** The large put's size (and the memcpy's): 256 MiB. */
const BIG_BYTES = 256 * 1024 * 1024;
const GB = 1e9;
const BATCH = 1000;
/** Shared actors created (and each called once) per op of shared_actor_creation_per_s: issue 16's 5,000. */
const SHARED_ACTORS = 5000;
/** Actors actor_creation_per_s creates per op. */
const ACTORS = 100;

type LimitName = "raw_roundtrip_sequential" | "raw_roundtrip_pipelined" | "memcpy_gigabytes" | "tcp_loopback_gigabytes" | "raw_queue_declares";

interface Target {
  /** At least this fraction of the limit. */
  minRatio?: number;
  /** Strictly above this absolute figure (Ray's, for sync tasks). */
  above?: number;
  /** At least this absolute figure. */
  atLeast?: number;
}

export interface Case {
  name: string;
  kind: "limit" | "warren";
  unit: "ops/s" | "GB/s" | "actors/s";
  what: string;
  limit?: LimitName;
  /** The limit divided by this (a batch of 1000 against round trips). */
  limitDivisor?: number;
  /** A second limit, printed beside the figure but not judged: what the machine allows this case at best. */
  bound?: LimitName;
  ray?: number;
  target?: Target;
  setup(ctx: Context): Promise<Running>;
}

const SEQ: LimitName = "raw_roundtrip_sequential";
const PIPE: LimitName = "raw_roundtrip_pipelined";

const batchOf = <T>(n: number, make: () => T): T[] => Array.from({ length: n }, make);
const getAll = (refs: warren.ObjectRef<unknown>[]) => warren.get(refs, { timeout: GET_TIMEOUT });
const getOne = (ref: warren.ObjectRef<unknown>) => warren.get(ref, { timeout: GET_TIMEOUT });

/** An actor case: create the actor(s), wait until they answer, kill them afterwards. */
async function withActors<T extends warren.ActorHandle<{ small_value(): unknown }>>(handles: T[]): Promise<() => Promise<void>> {
  await getAll(handles.map((h) => h.small_value.remote()));
  return () => killAll(handles.map((h) => [h, () => h.small_value.remote()]));
}

/**
 * Kills actors and waits until each is dead (`probe`, a call, then fails): the node's work of
 * their deaths (worker exits, mailboxes answered and removed) is not the next case's to carry.
 */
async function killAll(actors: [warren.ActorHandle<unknown>, () => warren.ObjectRef<unknown>][]): Promise<void> {
  await Promise.all(actors.map(([h]) => warren.kill(h, { noRestart: true })));
  await Promise.all(actors.map(async ([, probe]) => {
    // A call the actor took before the kill reached it still succeeds: call again.
    for (let i = 0; i < 100 && (await getOne(probe()).then(() => true, () => false)); i++);
  }));
}

export const CASES: Case[] = [
  // -- the limits, measured first ------------------------------------------------------------
  {
    name: "raw_roundtrip_sequential", kind: "limit", unit: "ops/s",
    what: "bare amqplib request/reply to one echo process (direct reply-to, noDelay), one in flight",
    async setup(ctx) {
      const echo = await ctx.echo();
      return { op: () => echo.call(), multiplier: 1 };
    },
  },
  {
    name: "raw_roundtrip_pipelined", kind: "limit", unit: "ops/s",
    what: "the same echo, 1000 requests published then all 1000 replies awaited",
    async setup(ctx) {
      const echo = await ctx.echo();
      return { op: () => Promise.all(batchOf(BATCH, () => echo.call())), multiplier: BATCH };
    },
  },
  {
    name: "memcpy_gigabytes", kind: "limit", unit: "GB/s",
    what: "Buffer.copy of 256 MiB into a preallocated buffer",
    async setup() {
      let src: Buffer | undefined = Buffer.alloc(BIG_BYTES, 7);
      let dst: Buffer | undefined = Buffer.alloc(BIG_BYTES);
      return {
        op: () => void src!.copy(dst!),
        multiplier: BIG_BYTES / GB,
        teardown: () => { src = dst = undefined; },
      };
    },
  },
  {
    name: "tcp_loopback_gigabytes", kind: "limit", unit: "GB/s",
    what: "256 MiB over a bare TCP socket on 127.0.0.1 from another process, read into a preallocated buffer (what any transfer between two nodes here can reach)",
    async setup() {
      const source = fork(path.join(__dirname, "tcp_source.js"), [String(BIG_BYTES)], { stdio: "inherit" });
      const port = await new Promise<number>((resolve, reject) => source.once("message", (p) => resolve(Number(p))).once("exit", (code) => reject(new Error(`tcp_source.js exited with ${code}`))));
      let into: Buffer | undefined = Buffer.alloc(BIG_BYTES);
      const spare = Buffer.allocUnsafe(64); // where the end of the stream is read
      return {
        op: () => new Promise<void>((resolve, reject) => {
          let got = 0;
          const sock = net.connect({ host: "127.0.0.1", port, onread: { buffer: () => (got < BIG_BYTES ? into!.subarray(got) : spare), callback: (n) => ((got += n), true) } });
          sock.on("error", reject);
          sock.on("end", () => (got === BIG_BYTES ? resolve() : reject(new Error(`tcp_source.js sent ${got} of ${BIG_BYTES} bytes`))));
        }),
        multiplier: BIG_BYTES / GB,
        teardown: () => { into = undefined; source.kill(); },
      };
    },
  },
  {
    name: "raw_queue_declares", kind: "limit", unit: "ops/s",
    what: "bare amqplib: 1000 queues declared at once on one channel, durable as actor mailboxes (their deletes not timed): what a mailbox costs the broker",
    async setup(ctx) {
      const ch = await ctx.bareChannel();
      let round = 0;
      return {
        op: async () => {
          const names = batchOf(BATCH, () => `warren-bench-queue-${process.pid}-${round++}`);
          const start = performance.now();
          await Promise.all(names.map((q) => ch.assertQueue(q, { durable: true, arguments: ctx.durable ? { "x-queue-type": "quorum" } : {} })));
          const took = (performance.now() - start) / 1000;
          await Promise.all(names.map((q) => ch.deleteQueue(q)));
          return took;
        },
        multiplier: BATCH,
      };
    },
  },
  // -- warren, named as Ray's microbenchmark -------------------------------------------------
  {
    name: "single_client_tasks_sync", kind: "warren", unit: "ops/s", limit: SEQ, ray: 952, target: { minRatio: 0.6, above: 952 },
    what: "get(small_value.remote()), one task at a time",
    async setup(ctx) {
      await ctx.warren();
      await getOne(smallValue.remote());
      return { op: () => getOne(smallValue.remote()), multiplier: 1 };
    },
  },
  {
    name: "single_client_tasks_async", kind: "warren", unit: "ops/s", limit: PIPE, ray: 7691, target: { minRatio: 0.5 },
    what: "get([small_value.remote() x 1000]), counted per task",
    async setup(ctx) {
      await ctx.warren();
      return { op: () => getAll(batchOf(BATCH, () => smallValue.remote())), multiplier: BATCH };
    },
  },
  {
    name: "single_client_tasks_and_get_batch", kind: "warren", unit: "ops/s", limit: PIPE, limitDivisor: BATCH, ray: 8, target: { minRatio: 0.5 },
    what: "get([small_value.remote() x 1000]), counted per batch",
    async setup(ctx) {
      await ctx.warren();
      return { op: () => getAll(batchOf(BATCH, () => smallValue.remote())), multiplier: 1 };
    },
  },
  {
    name: "multi_client_tasks_async", kind: "warren", unit: "ops/s", limit: PIPE, target: { minRatio: 0.5 },
    what: "4 client actors each submit 1000 tasks and get them; counted per task",
    async setup(ctx) {
      await ctx.warren();
      const clients = batchOf(4, () => Client.remote());
      await getAll(clients.map((c) => c.small_value_batch.remote(1)));
      return {
        op: () => getAll(clients.map((c) => c.small_value_batch.remote(BATCH))),
        multiplier: clients.length * BATCH,
        teardown: () => killAll(clients.map((c) => [c, () => c.small_value_batch.remote(0)])),
      };
    },
  },
  {
    name: "1_1_actor_calls_sync", kind: "warren", unit: "ops/s", limit: SEQ, ray: 1950, target: { minRatio: 0.7 },
    what: "get(a.small_value.remote()), one call at a time",
    async setup(ctx) {
      await ctx.warren();
      const a = SyncActor.remote();
      return { op: () => getOne(a.small_value.remote()), multiplier: 1, teardown: await withActors([a]) };
    },
  },
  {
    name: "1_1_actor_calls_async", kind: "warren", unit: "ops/s", limit: PIPE, ray: 7956, target: { minRatio: 0.6 },
    what: "get([a.small_value.remote() x 1000])",
    async setup(ctx) {
      await ctx.warren();
      const a = SyncActor.remote();
      return { op: () => getAll(batchOf(BATCH, () => a.small_value.remote())), multiplier: BATCH, teardown: await withActors([a]) };
    },
  },
  {
    name: "1_1_actor_calls_concurrent", kind: "warren", unit: "ops/s", limit: PIPE, ray: 5303, target: { minRatio: 0.6 },
    what: "the same against an actor with maxConcurrency 16",
    async setup(ctx) {
      await ctx.warren();
      const a = SyncActor.options({ maxConcurrency: 16 }).remote();
      return { op: () => getAll(batchOf(BATCH, () => a.small_value.remote())), multiplier: BATCH, teardown: await withActors([a]) };
    },
  },
  {
    name: "1_1_async_actor_calls_sync", kind: "warren", unit: "ops/s", limit: SEQ, target: { minRatio: 0.7 },
    what: "get(a.small_value.remote()) on an async actor, one call at a time",
    async setup(ctx) {
      await ctx.warren();
      const a = AsyncActor.remote();
      return { op: () => getOne(a.small_value.remote()), multiplier: 1, teardown: await withActors([a]) };
    },
  },
  {
    name: "1_1_async_actor_calls_async", kind: "warren", unit: "ops/s", limit: PIPE, target: { minRatio: 0.6 },
    what: "get([a.small_value.remote() x 1000]) on an async actor",
    async setup(ctx) {
      await ctx.warren();
      const a = AsyncActor.remote();
      return { op: () => getAll(batchOf(BATCH, () => a.small_value.remote())), multiplier: BATCH, teardown: await withActors([a]) };
    },
  },
  {
    name: "n_n_actor_calls_async", kind: "warren", unit: "ops/s", limit: PIPE, target: { minRatio: 0.6 },
    what: "4 tasks each make 1000 calls spread over 2 actors and get them",
    async setup(ctx) {
      await ctx.warren();
      const actors = batchOf(2, () => SyncActor.remote());
      const teardown = await withActors(actors);
      return { op: () => getAll(batchOf(4, () => work.remote(actors, BATCH))), multiplier: 4 * BATCH, teardown };
    },
  },
  {
    name: "shared_actor_creation_per_s", kind: "warren", unit: "actors/s", limit: "raw_queue_declares", target: { atLeast: 200 },
    what: `${SHARED_ACTORS.toLocaleString("en-US")} shared actors (process: "shared") created and each called once (their kills not timed); each has a mailbox queue of its own`,
    async setup(ctx) {
      await ctx.warren();
      const Shared = SyncActor.options({ process: "shared" });
      // A host with one actor: the base each host's memory is measured from.
      const first = Shared.remote();
      const baseKiB = procs.rssKiB(await getOne(first.pid.remote()) as number) ?? 0;
      let note: string | undefined;
      return {
        op: () => timedCreation(SHARED_ACTORS, () => Shared.remote(), (a) => a.small_value.remote(), async (actors) => {
          note ??= await hostMemory(actors, baseKiB);
        }),
        multiplier: SHARED_ACTORS,
        note: () => note,
        teardown: () => killAll([[first, () => first.small_value.remote()]]),
      };
    },
  },
  {
    name: "actor_creation_per_s", kind: "warren", unit: "actors/s", target: { above: 20 },
    what: `${ACTORS} own-process actors created (Counter.remote()) and each called once, all awaited; timed until the last call answers, the kills after are not`,
    async setup(ctx) {
      await ctx.warren();
      return {
        op: () => timedCreation(ACTORS, () => Counter.remote(), (a) => a.incr.remote()),
        multiplier: ACTORS,
      };
    },
  },
  {
    name: "n_n_shared_actor_calls_async", kind: "warren", unit: "ops/s", limit: PIPE, target: { minRatio: 0.5 },
    what: "4 tasks each make 1000 calls spread over 1,000 shared actors and get them",
    async setup(ctx) {
      await ctx.warren();
      const actors = batchOf(BATCH, () => SyncActor.options({ process: "shared" }).remote());
      const teardown = await withActors(actors);
      return { op: () => getAll(batchOf(4, () => work.remote(actors, BATCH))), multiplier: 4 * BATCH, teardown };
    },
  },
  {
    name: "single_client_put_calls", kind: "warren", unit: "ops/s", ray: 5238, target: { atLeast: 50_000 },
    what: "put(0) in the driver, 1000 per op",
    async setup(ctx) {
      await ctx.warren();
      return { op: () => { for (let i = 0; i < BATCH; i++) warren.put(0); }, multiplier: BATCH };
    },
  },
  {
    name: "single_client_get_calls", kind: "warren", unit: "ops/s", ray: 10394, target: { atLeast: 100_000 },
    what: "get(ref) of a small put in the driver, 1000 per op",
    async setup(ctx) {
      await ctx.warren();
      const ref = warren.put(0);
      return {
        op: async () => { for (let i = 0; i < BATCH; i++) await warren.get(ref); },
        multiplier: BATCH,
      };
    },
  },
  {
    name: "single_client_put_gigabytes", kind: "warren", unit: "GB/s", limit: "memcpy_gigabytes", ray: 20.9, target: { minRatio: 0.3 },
    what: "put(256 MiB Buffer), then drop the ref and let it be freed",
    async setup(ctx) {
      await ctx.warren();
      let big: Buffer | undefined = Buffer.alloc(BIG_BYTES, 7);
      return {
        op: async () => {
          putAndDrop(big!);
          ctx.gc(); // the ref is unreachable: its finalizer frees the stored copy
          await tick();
          await tick();
        },
        multiplier: BIG_BYTES / GB,
        // The first puts grow the store's file (LMDB reuses freed pages only after a few commits).
        minWarmupOps: 4,
        teardown: () => { big = undefined; },
      };
    },
  },
  {
    name: "cross_node_get_gigabytes", kind: "warren", unit: "GB/s", limit: "memcpy_gigabytes", bound: "tcp_loopback_gigabytes", target: { minRatio: 0.2 },
    what: "a task on the driver's node gets a 256 MiB Buffer made on another node (timed inside the task; making it is not)",
    async setup(ctx) {
      await ctx.farNode();
      const peaks: { rssBefore: number; peakRss: number }[] = [];
      return {
        op: async () => {
          ctx.gc(); // the last op's object, on both nodes, is freed with its ref
          const big = bigBuffer.options({ numCpus: 0, resources: { [FAR_NODE]: 1 } }).remote(BIG_BYTES);
          await warren.wait([big], { timeout: GET_TIMEOUT });
          const r = await warren.get(timedGet.options({ numCpus: 1 }).remote([big]), { timeout: GET_TIMEOUT });
          peaks.push(r);
          return r.seconds;
        },
        multiplier: BIG_BYTES / GB,
        teardown: () => {
          const MiB = 2 ** 20;
          const [first] = peaks;
          const worst = Math.max(...peaks.map((p) => p.peakRss));
          console.error(`  cross_node_get_gigabytes: the reading worker's peak RSS ${(first.peakRss / MiB).toFixed(0)} MiB after its first get (${(first.peakRss / BIG_BYTES).toFixed(2)}x the object; ` +
            `${(first.rssBefore / MiB).toFixed(0)} MiB before it), ${(worst / MiB).toFixed(0)} MiB at most over ${peaks.length} gets`);
        },
      };
    },
  },
  {
    name: "single_client_wait_1k_refs", kind: "warren", unit: "ops/s", ray: 5.2,
    what: "submit 1000 tasks, then wait(notReady) for one ref at a time until none is left (Ray's loop)",
    async setup(ctx) {
      await ctx.warren();
      return {
        // Ray's loop passes no timeout to wait(); one deadline over the whole op guards it instead.
        op: () => withTimeout((async () => {
          let notReady = batchOf(BATCH, () => smallValue.remote());
          while (notReady.length > 0) [, notReady] = await warren.wait(notReady, { numReturns: 1 });
        })(), GET_TIMEOUT, "1000 tasks and 1000 waits"),
        multiplier: 1,
      };
    },
  },
  {
    name: "wait_loop_10k", kind: "warren", unit: "ops/s", target: { above: 1 / 1.5 },
    what: "the same loop over 10,000 tasks (10,000 waits on a shrinking list): under 1.5 s, so a wait costs about a copy of its list",
    async setup(ctx) {
      await ctx.warren();
      return {
        op: () => withTimeout((async () => {
          let notReady = batchOf(10 * BATCH, () => smallValue.remote());
          while (notReady.length > 0) [, notReady] = await warren.wait(notReady, { numReturns: 1 });
        })(), GET_TIMEOUT, "10,000 tasks and 10,000 waits"),
        multiplier: 1,
      };
    },
  },
  ...NATIVE_CASES,
];


/** Not a timed case: the memory target's situation (bench/idle_memory.js). */
export const IDLE_MEMORY = "idle_memory";
export const ALL_NAMES = [...CASES.map((c) => c.name), IDLE_MEMORY];

/**
 * One op of a creation case: `n` actors made and each called once, timed (the seconds it
 * returns), then killed, not timed; `made` sees them before the kill.
 */
async function timedCreation<A extends warren.ActorHandle<unknown>>(n: number, make: () => A, call: (a: A) => warren.ObjectRef<unknown>, made?: (actors: A[]) => Promise<void>): Promise<number> {
  const start = performance.now();
  const actors = batchOf(n, make);
  await getAll(actors.map(call));
  const seconds = (performance.now() - start) / 1000;
  await made?.(actors);
  await killAll(actors.map((a) => [a, () => call(a)]));
  return seconds;
}

/** The memory of the host processes of shared `actors`: their RSS, and what that is per actor beyond `baseKiB` a host. */
async function hostMemory(actors: warren.ActorHandle<SyncActor>[], baseKiB: number): Promise<string> {
  const pids = new Set(await getAll(actors.map((a) => a.pid.remote())) as number[]);
  const total = [...pids].reduce((sum, p) => sum + (procs.rssKiB(p) ?? 0), 0);
  return `${pids.size} host processes (a broker connection each) for ${actors.length.toLocaleString("en-US")} actors, RSS ${(total / 1024).toFixed(0)} MiB: ` +
    `${((total - pids.size * baseKiB) / actors.length).toFixed(0)} KiB per actor beyond a host's ${(baseKiB / 1024).toFixed(0)} MiB with one actor`;
}

function putAndDrop(value: Buffer): void {
  warren.put(value); // the ref is dropped here
}

/** `p`, or an error if it takes more than `seconds`. */
function withTimeout<T>(p: Promise<T>, seconds: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not finish within ${seconds} s`)), seconds * 1000); }),
  ]).finally(() => clearTimeout(timer));
}
