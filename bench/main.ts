/**
 * warren's microbenchmark (`npm run bench`), after Ray's `ray_perf.py` and
 * `ray_microbenchmark_helpers.py`: each case is an operation run over and over, first for a
 * warm-up, then for several timed rounds of at least `--seconds` each; a round's figure is
 * operations (times the case's multiplier) per second, and a case reports the mean and the
 * standard deviation of its rounds.
 *
 * In the same run it measures the limits the figures are judged against: a bare amqplib echo
 * over the same broker (one echo process, direct reply-to, Nagle off), one round trip at a time
 * and in batches of 1000, and a memcpy of the large put's size: first on their own, then again
 * beside each case that is judged against one, a round of the limit before each round of the
 * case (the machine drifts). Each warren figure is printed beside that limit, its ratio of it,
 * the target from DESIGN.md with a pass/miss mark,
 * and Ray's published figure. Then the memory: RSS of the benchmark's own driver, node and
 * workers after the run, and the memory target's situation measured on its own (a fresh driver
 * with `init({ numCpus: 4 })` and 4 idle workers, bench/idle_memory.js).
 *
 * A case that cannot run (an error, a get that times out, a case past its deadline) is a FAILED
 * line and makes the exit status 1; a missed target is only reported.
 */
import { Command, InvalidArgumentError } from "commander";
import { ChildProcess, execFileSync, fork, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import * as amqp from "amqplib";
import * as warren from "warren";
import { AsyncActor, Client, SyncActor, smallValue, work } from "./workload";

interface Procs {
  memorySnapshot(cluster: string, driverPid?: number): MemorySnapshot;
}
interface MemorySnapshot {
  driverMiB: number;
  driverFileMiB: number;
  nodeMiB: number;
  nodePids: number[];
  workers: { pid: number; rssMiB: number }[];
  totalMiB: number;
}
const procs: Procs = require("./procs.js");

const ROOT = path.resolve(__dirname, "..");
const ADDRESS = process.env.WARREN_ADDRESS ?? "amqp://guest:guest@127.0.0.1:5672";
/** A get that waits longer than this fails the case instead of hanging the run. */
const GET_TIMEOUT = 30;
/** The large put's size (and the memcpy's): 256 MiB. */
const BIG_BYTES = 256 * 1024 * 1024;
const GB = 1e9;
const BATCH = 1000;
/** The memory target: a driver plus a node with 4 idle workers, in MiB. */
const MEMORY_TARGET_MIB = 400;

// ---- cases ------------------------------------------------------------------------------------

type LimitName = "raw_roundtrip_sequential" | "raw_roundtrip_pipelined" | "memcpy_gigabytes";

interface Target {
  /** At least this fraction of the limit. */
  minRatio?: number;
  /** Strictly above this absolute figure (Ray's, for sync tasks). */
  above?: number;
  /** At least this absolute figure. */
  atLeast?: number;
}

interface Running {
  op: () => unknown;
  /** Units one op counts for (1000 for a batch of 1000 calls, gigabytes for a large put). */
  multiplier: number;
  teardown?: () => Promise<void> | void;
  /** Calls the warm-up makes at least, however long they take. */
  minWarmupOps?: number;
}

interface Case {
  name: string;
  kind: "limit" | "warren";
  unit: "ops/s" | "GB/s";
  what: string;
  limit?: LimitName;
  /** The limit divided by this (a batch of 1000 against round trips). */
  limitDivisor?: number;
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
  for (const [h] of actors) await warren.kill(h, { noRestart: true });
  for (const [, probe] of actors) {
    // A call the actor took before the kill reached it still succeeds: call again.
    for (let i = 0; i < 100 && (await getOne(probe()).then(() => true, () => false)); i++);
  }
}

const CASES: Case[] = [
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
];

/** Not a timed case: the memory target's situation (bench/idle_memory.js). */
const IDLE_MEMORY = "idle_memory";
const ALL_NAMES = [...CASES.map((c) => c.name), IDLE_MEMORY];

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

function tick(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

// ---- the harness (Ray's timeit) ---------------------------------------------------------------

interface Settings {
  warmup: number;
  rounds: number;
  seconds: number;
}

interface Stats {
  mean: number;
  std: number;
  rounds: number[];
}

/**
 * Ray's `timeit`: calls `op` for `warmup` seconds (and at least `minWarmupOps` times), takes a
 * step of a tenth of the warm-up's count (at least 1), then runs `rounds` rounds, each calling
 * steps of `op` until at least `seconds` passed; a round's figure is multiplier * calls / elapsed.
 * Mean and population std, like numpy.
 *
 * With `paired` (the case's limit), a round of the limit runs before each of the case's rounds, so
 * that the ratio compares the two under the same conditions: on a shared 2-CPU machine the raw
 * round trip itself drifts by 20-30% within minutes.
 */
async function timeit(run: Running, s: Settings, abort: { aborted: boolean }, paired?: Running): Promise<{ stats: Stats; paired?: Stats }> {
  const check = () => {
    if (abort.aborted) throw new Error("aborted");
  };
  const warm = async (r: Running): Promise<number> => {
    const start = performance.now();
    let count = 0;
    do {
      await r.op();
      await tick();
      check();
      count++;
    } while (performance.now() - start < s.warmup * 1000 || count < (r.minWarmupOps ?? 1));
    return Math.floor(count / 10) + 1;
  };
  const round = async (r: Running, step: number): Promise<number> => {
    const start = performance.now();
    let count = 0;
    while (performance.now() - start < s.seconds * 1000) {
      for (let i = 0; i < step; i++) {
        await r.op();
        await tick();
        check();
      }
      count += step;
    }
    return (r.multiplier * count) / ((performance.now() - start) / 1000);
  };
  const pairedStep = paired && (await warm(paired));
  const step = await warm(run);
  const rounds: number[] = [];
  const pairedRounds: number[] = [];
  for (let r = 0; r < s.rounds; r++) {
    if (paired) pairedRounds.push(await round(paired, pairedStep!));
    rounds.push(await round(run, step));
  }
  return { stats: statsOf(rounds), paired: paired && statsOf(pairedRounds) };
}

function statsOf(rounds: number[]): Stats {
  const mean = rounds.reduce((a, b) => a + b, 0) / rounds.length;
  const std = Math.sqrt(rounds.reduce((a, b) => a + (b - mean) ** 2, 0) / rounds.length);
  return { mean, std, rounds };
}

/** Rejects after `seconds` (and sets `abort.aborted` so the loop behind `p` stops too). */
function deadline<T>(p: Promise<T>, seconds: number, abort: { aborted: boolean }, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => {
        abort.aborted = true;
        reject(new Error(`${what} did not finish within ${seconds} s`));
      }, seconds * 1000);
    }),
  ]).finally(() => clearTimeout(timer));
}

// ---- what the cases share: the echo server and the warren cluster -----------------------------

/** The raw limit's client: publishes to the echo process's queue, replies by direct reply-to. */
class Echo {
  private readonly pending = new Map<string, () => void>();
  private seq = 0;
  private static readonly PAYLOAD = Buffer.alloc(64, 1);

  private constructor(
    private readonly proc: ChildProcess,
    private readonly conn: amqp.ChannelModel,
    private readonly ch: amqp.Channel,
    private readonly queue: string,
  ) {}

  static async start(): Promise<Echo> {
    const queue = `warren-bench-echo-${randomBytes(6).toString("hex")}`;
    const proc = fork(path.join(__dirname, "echo.js"), [queue], {
      env: { ...process.env, WARREN_BENCH_ECHO_ADDRESS: ADDRESS }, // not in argv, where ps shows it
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("the echo process did not start within 20 s")), 20_000);
        proc.once("exit", (code, signal) => { clearTimeout(timer); reject(new Error(`the echo process exited (${signal ?? code}) while starting`)); });
        proc.on("message", (m: { t?: string }) => { if (m?.t === "ready") { clearTimeout(timer); resolve(); } });
      });
      const conn = await amqp.connect(ADDRESS, { noDelay: true, clientProperties: { connection_name: "warren bench echo client" } });
      conn.on("error", () => undefined);
      const ch = await conn.createChannel();
      ch.on("error", () => undefined);
      const echo = new Echo(proc, conn, ch, queue);
      await ch.consume("amq.rabbitmq.reply-to", (msg) => {
        if (!msg) return;
        const done = echo.pending.get(msg.properties.correlationId);
        echo.pending.delete(msg.properties.correlationId);
        done?.();
      }, { noAck: true });
      return echo;
    } catch (err) {
      proc.kill("SIGKILL");
      throw err;
    }
  }

  call(): Promise<void> {
    const id = String(++this.seq);
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.ch.publish("", this.queue, Echo.PAYLOAD, { replyTo: "amq.rabbitmq.reply-to", correlationId: id });
    });
  }

  async close(): Promise<void> {
    await this.ch.close().catch(() => undefined);
    await this.conn.close().catch(() => undefined);
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((r) => this.proc.once("exit", r));
      this.proc.kill("SIGTERM");
      const timer = setTimeout(() => this.proc.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
    }
  }

  kill(): void {
    this.proc.kill("SIGKILL");
  }
}

class Context {
  private echoP?: Promise<Echo>;
  private warrenP?: Promise<warren.ClusterInfo>;
  readonly gc: () => void = exposeGc();

  echo(): Promise<Echo> {
    return (this.echoP ??= Echo.start());
  }

  warren(): Promise<warren.ClusterInfo> {
    return (this.warrenP ??= warren.init());
  }

  async cluster(): Promise<warren.ClusterInfo | undefined> {
    return this.warrenP?.catch(() => undefined);
  }

  async close(): Promise<void> {
    const echo = await this.echoP?.catch(() => undefined);
    this.echoP = undefined;
    await echo?.close();
    if (this.warrenP) {
      this.warrenP = undefined;
      await warren.shutdown();
    }
  }

  /** For a signal: no waiting on anything. */
  killNow(): void {
    void this.echoP?.then((e) => e.kill(), () => undefined);
  }
}

function exposeGc(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === "function") return g;
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc");
}

// ---- reporting --------------------------------------------------------------------------------

interface Result {
  c: Case;
  stats?: Stats;
  /** The case's limit, measured in rounds alternating with the case's own (timeit). */
  paired?: Stats;
  error?: string;
  seconds: number;
}

/** Ray's published figures as DESIGN.md gives them. */
function fmtRay(x: number | undefined): string {
  return x === undefined ? "" : x.toLocaleString("en-US", { maximumFractionDigits: 1 });
}

function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return "-";
  const digits = Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2;
  return x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The limit a case is judged against: measured alongside it, else on its own at the start. */
function limitOf(r: Result, results: Map<string, Result>): number | undefined {
  if (!r.c.limit) return undefined;
  const l = r.paired?.mean ?? results.get(r.c.limit)?.stats?.mean;
  return l === undefined ? undefined : l / (r.c.limitDivisor ?? 1);
}

function limitLabel(c: Case): string {
  if (!c.limit) return "-";
  const short = { raw_roundtrip_sequential: "raw seq", raw_roundtrip_pipelined: "raw pipe", memcpy_gigabytes: "memcpy" }[c.limit];
  return c.limitDivisor ? `${short}/${c.limitDivisor}` : short;
}

function targetText(c: Case): string {
  const t = c.target;
  if (!t) return "";
  const parts: string[] = [];
  if (t.minRatio !== undefined) parts.push(`>=${t.minRatio} limit`);
  if (t.above !== undefined) parts.push(`>${fmt(t.above)}/s`);
  if (t.atLeast !== undefined) parts.push(`>=${fmt(t.atLeast)}/s`);
  return parts.join(" & ");
}

/** true/false when a target applies and could be judged, undefined otherwise. */
function targetMet(r: Result, limit: number | undefined): boolean | undefined {
  const t = r.c.target;
  const mean = r.stats?.mean;
  if (!t || mean === undefined) return undefined;
  if (t.minRatio !== undefined && (limit === undefined || mean / limit < t.minRatio)) return limit === undefined ? undefined : false;
  if (t.above !== undefined && !(mean > t.above)) return false;
  if (t.atLeast !== undefined && !(mean >= t.atLeast)) return false;
  return true;
}

function table(rows: string[][], rightAligned: boolean[]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((cell, i) => (rightAligned[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join("  ").trimEnd();
  return [line(rows[0]), line(widths.map((w) => "-".repeat(w))), ...rows.slice(1).map(line)].join("\n");
}

function meanStd(r: Result): string {
  if (r.error) return "FAILED";
  if (!r.stats) return "-";
  return `${fmt(r.stats.mean)} ± ${fmt(r.stats.std)}`;
}

interface MemoryReport {
  /** `heap` is the driver's process.memoryUsage() in MiB, after full collections. */
  afterRun?: MemorySnapshot & { cluster: string; heap: Record<string, number> };
  idle?: MemorySnapshot & { targetMiB: number; pass: boolean };
  idleError?: string;
}

function report(results: Result[], memory: MemoryReport): string {
  const byName = new Map(results.map((r) => [r.c.name, r]));
  const out: string[] = [];
  const limits = results.filter((r) => r.c.kind === "limit");
  if (limits.length) {
    out.push("Limits (same run, same broker)");
    out.push(table(
      [["limit", "mean ± std", "unit", "what"], ...limits.map((r) => [r.c.name, meanStd(r), r.c.unit, r.c.what])],
      [false, true, false, false],
    ));
    out.push("");
  }
  const cases = results.filter((r) => r.c.kind === "warren");
  if (cases.length) {
    out.push("warren (ops/s unless marked GB/s; ratio = warren / limit; limit value: measured in rounds alternating with the case's)");
    const rows = [["case", "warren mean ± std", "Ray", "limit", "limit value", "ratio", "target", "met"]];
    for (const r of cases) {
      const limit = limitOf(r, byName);
      const met = targetMet(r, limit);
      const unit = r.c.unit === "GB/s" ? " GB/s" : "";
      rows.push([
        r.c.name,
        meanStd(r) + unit,
        fmtRay(r.c.ray),
        limitLabel(r.c),
        r.c.limit ? fmt(limit) : "-",
        limit !== undefined && r.stats ? r.stats.mean / limit >= 10 ? fmt(r.stats.mean / limit) : (r.stats.mean / limit).toFixed(2) : "-",
        targetText(r.c),
        r.error ? "FAILED" : met === undefined ? "" : met ? "ok" : "MISS",
      ]);
    }
    out.push(table(rows, [false, true, true, false, true, true, false, false]));
    const failed = cases.filter((r) => r.error);
    for (const r of [...limits.filter((x) => x.error), ...failed]) out.push(`FAILED ${r.c.name}: ${r.error}`);
    out.push("");
  } else {
    for (const r of limits.filter((x) => x.error)) out.push(`FAILED ${r.c.name}: ${r.error}`);
  }
  if (memory.afterRun) {
    const m = memory.afterRun;
    out.push("Memory after the run (RSS, MiB): this benchmark's driver, its node and workers");
    out.push(`  driver ${fmt(m.driverMiB)} (file-backed ${fmt(m.driverFileMiB)}), node ${fmt(m.nodeMiB)}, ` +
      `${m.workers.length} workers ${m.workers.map((w) => fmt(w.rssMiB)).join(" ")}; total ${fmt(m.totalMiB)}`);
    out.push(`  driver heap after full GCs: used ${m.heap.heapUsed} of ${m.heap.heapTotal}, external ${m.heap.external} (array buffers ${m.heap.arrayBuffers})`);
  }
  if (memory.idle) {
    const m = memory.idle;
    out.push(`Memory target (fresh plain-JS driver, init({ numCpus: 4 }), 4 idle workers; RSS, MiB; target < ${MEMORY_TARGET_MIB} total)`);
    out.push(`  driver ${fmt(m.driverMiB)}, node ${fmt(m.nodeMiB)}, ${m.workers.length} workers ${m.workers.map((w) => fmt(w.rssMiB)).join(" ")}; total ${fmt(m.totalMiB)}  ${m.pass ? "ok" : "MISS"}`);
  } else if (memory.idleError) {
    out.push(`FAILED ${IDLE_MEMORY}: ${memory.idleError}`);
  }
  return out.join("\n");
}

// ---- the idle-memory measurement --------------------------------------------------------------

function measureIdleMemory(): Promise<MemorySnapshot> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, "idle_memory.js")], { stdio: ["ignore", "pipe", "pipe"], cwd: ROOT });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split("\n").pop() ?? "";
      if (code === 0 && line.startsWith("{")) return resolve(JSON.parse(line));
      reject(new Error(`idle_memory.js ${signal ? `was killed (${signal}, 90 s limit)` : `exited with ${code}`}: ${(err || out).trim().split("\n").slice(-5).join(" | ")}`));
    });
  });
}

// ---- main -------------------------------------------------------------------------------------

function gitCommit(): string {
  const git = (...args: string[]) => execFileSync("git", args, { cwd: ROOT, encoding: "utf8", env: { ...process.env, GIT_OPTIONAL_LOCKS: "0" }, stdio: ["ignore", "pipe", "ignore"] }).trim();
  try {
    const head = git("rev-parse", "HEAD");
    const dirty = git("status", "--porcelain", "--untracked-files=no") !== "";
    return dirty ? `${head} (with uncommitted changes)` : head;
  } catch {
    return "unknown";
  }
}

function positive(kind: "integer" | "number") {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0 || (kind === "integer" && !Number.isInteger(n))) throw new InvalidArgumentError(`must be a positive ${kind}`);
    return n;
  };
}

export async function main(): Promise<number> {
  const program = new Command("npm run bench --")
    .description("warren's microbenchmark, after Ray's ray_perf.py: each case is run for a warm-up, then for several timed rounds; " +
      "the figure is the mean ± std of the rounds' ops/s, printed beside its raw limit measured in rounds alternating with its own.")
    .argument("[names...]", `cases to run (default: all). Available:\n  ${ALL_NAMES.join("\n  ")}`)
    .option("--json <file>", "also write the results as JSON to FILE")
    .option("--rounds <n>", "timed rounds per case", positive("integer"), 4)
    .option("--seconds <s>", "minimum seconds per round", positive("number"), 2)
    .option("--warmup <s>", "warm-up seconds per case", positive("number"), 1)
    .showHelpAfterError()
    .exitOverride();
  try {
    program.parse(process.argv);
  } catch (err) {
    return (err as { exitCode?: number }).exitCode ?? 2;
  }
  const opts = program.opts<{ json?: string; rounds: number; seconds: number; warmup: number }>();
  const names: string[] = program.args;
  const unknown = names.filter((n) => !ALL_NAMES.includes(n));
  if (unknown.length) {
    console.error(`unknown case${unknown.length > 1 ? "s" : ""}: ${unknown.join(", ")}\navailable:\n  ${ALL_NAMES.join("\n  ")}`);
    return 2;
  }
  const wanted = new Set(names.length ? names : ALL_NAMES);
  // A chosen case brings the limit it is judged against.
  for (const c of CASES) if (wanted.has(c.name) && c.limit) wanted.add(c.limit);
  const chosen = CASES.filter((c) => wanted.has(c.name));
  const settings: Settings = { warmup: opts.warmup, rounds: opts.rounds, seconds: opts.seconds };
  const commit = gitCommit();
  const started = performance.now();
  const date = new Date().toISOString();

  console.error(`warren bench: ${chosen.length} case(s)${wanted.has(IDLE_MEMORY) ? " + idle memory" : ""}; warm-up ${settings.warmup} s, ` +
    `${settings.rounds} rounds of >= ${settings.seconds} s; ${os.cpus().length} CPUs, Node ${process.version}; commit ${commit}`);

  const ctx = new Context();
  const onSignal = (sig: NodeJS.Signals) => {
    console.error(`\n${sig}: stopping`);
    ctx.killNow();
    void ctx.close().finally(() => process.exit(130));
    setTimeout(() => process.exit(130), 15_000).unref();
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const results: Result[] = [];
  const memory: MemoryReport = {};
  const total = chosen.length + (wanted.has(IDLE_MEMORY) ? 1 : 0);
  const tag = (i: number) => `[${String(i).padStart(String(total).length)}/${total}]`;
  try {
    for (const [i, c] of chosen.entries()) {
      const t0 = performance.now();
      process.stderr.write(`${tag(i + 1)} ${c.name}: running...\n`);
      const abort = { aborted: false };
      const budget = 120 + 4 * (settings.warmup + settings.rounds * settings.seconds);
      let run: Running | undefined;
      let limitRun: Running | undefined;
      const result: Result = { c, seconds: 0 };
      try {
        const limit = CASES.find((l) => l.name === c.limit);
        const measured = await deadline((async () => {
          run = await c.setup(ctx);
          limitRun = limit && (await limit.setup(ctx));
          return timeit(run, settings, abort, limitRun);
        })(), budget * (limit ? 2 : 1), abort, c.name);
        result.stats = measured.stats;
        result.paired = measured.paired;
      } catch (err) {
        result.error = (err as Error).message.split("\n")[0];
      } finally {
        try {
          await deadline(Promise.resolve(run?.teardown?.()), 30, { aborted: false }, `${c.name} teardown`);
          await limitRun?.teardown?.();
          ctx.gc(); // the next case starts from a collected heap, not this one's garbage
        } catch (err) {
          result.error ??= (err as Error).message;
        }
      }
      result.seconds = (performance.now() - t0) / 1000;
      results.push(result);
      const s = result.stats;
      process.stderr.write(`${tag(i + 1)} ${c.name}: ${result.error ? `FAILED: ${result.error}` : `${meanStd(result)} ${c.unit} (rounds ${s!.rounds.map(fmt).join(", ")})`} [${result.seconds.toFixed(1)} s]\n`);
    }
    const info = await ctx.cluster();
    if (info) {
      // What the driver still holds, not garbage: collect, and let the finalizers that free dropped
      // refs run (they are queued after a collection), a few times over.
      for (let i = 0; i < 5; i++) {
        ctx.gc();
        await new Promise((r) => setTimeout(r, 200));
      }
      const heap = Object.fromEntries(Object.entries(process.memoryUsage()).map(([k, v]) => [k, Math.round(v / 2 ** 20)]));
      memory.afterRun = { ...procs.memorySnapshot(info.cluster), cluster: info.cluster, heap };
    }
  } finally {
    await ctx.close();
  }
  if (wanted.has(IDLE_MEMORY)) {
    const t0 = performance.now();
    process.stderr.write(`${tag(total)} ${IDLE_MEMORY}: a fresh driver, init({ numCpus: 4 }), 4 idle workers...\n`);
    try {
      const snap = await measureIdleMemory();
      memory.idle = { ...snap, targetMiB: MEMORY_TARGET_MIB, pass: snap.totalMiB < MEMORY_TARGET_MIB };
      process.stderr.write(`${tag(total)} ${IDLE_MEMORY}: ${fmt(snap.totalMiB)} MiB total [${((performance.now() - t0) / 1000).toFixed(1)} s]\n`);
    } catch (err) {
      memory.idleError = (err as Error).message;
      process.stderr.write(`${tag(total)} ${IDLE_MEMORY}: FAILED: ${memory.idleError}\n`);
    }
  }
  process.removeListener("SIGINT", onSignal);
  process.removeListener("SIGTERM", onSignal);

  const elapsed = (performance.now() - started) / 1000;
  console.log("");
  console.log(report(results, memory));
  console.log(`\ncommit ${commit}, ${date}; warm-up ${settings.warmup} s, ${settings.rounds} rounds of >= ${settings.seconds} s; ` +
    `${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim() ?? "?"}), Node ${process.version}; total ${elapsed.toFixed(0)} s`);

  if (opts.json) {
    const byName = new Map(results.map((r) => [r.c.name, r]));
    const ok = results.filter((r) => r.stats);
    const json = {
      metrics: Object.fromEntries(ok.filter((r) => r.c.kind === "warren").map((r) => [r.c.name, r.stats!.mean])),
      limits: Object.fromEntries(ok.filter((r) => r.c.kind === "limit").map((r) => [r.c.name, r.stats!.mean])),
      /** Each case's limit as measured in rounds alternating with it: what `ratios` divide by. */
      pairedLimits: Object.fromEntries(ok.filter((r) => r.paired).map((r) => [r.c.name, { limit: r.c.limit, mean: r.paired!.mean, rounds: r.paired!.rounds }])),
      ratios: Object.fromEntries(ok.filter((r) => r.c.kind === "warren" && limitOf(r, byName) !== undefined).map((r) => [r.c.name, r.stats!.mean / limitOf(r, byName)!])),
      std: Object.fromEntries(ok.map((r) => [r.c.name, r.stats!.std])),
      rounds: Object.fromEntries(ok.map((r) => [r.c.name, r.stats!.rounds])),
      units: Object.fromEntries(results.map((r) => [r.c.name, r.c.unit])),
      ray: Object.fromEntries(results.filter((r) => r.c.ray !== undefined).map((r) => [r.c.name, r.c.ray])),
      targets: Object.fromEntries(results.filter((r) => r.c.target).map((r) => [r.c.name, { target: targetText(r.c), limit: r.c.limit ?? null, met: targetMet(r, limitOf(r, byName)) ?? null }])),
      failed: Object.fromEntries([
        ...results.filter((r) => r.error).map((r) => [r.c.name, r.error]),
        ...(memory.idleError ? [[IDLE_MEMORY, memory.idleError]] : []),
      ]),
      memory,
      settings,
      machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model.trim(), node: process.version, platform: `${os.platform()} ${os.release()}` },
      commit,
      date,
      durationSeconds: Math.round(elapsed),
    };
    fs.writeFileSync(opts.json, JSON.stringify(json, null, 2) + "\n");
    console.log(`wrote ${opts.json}`);
  }
  const failed = results.filter((r) => r.error).length + (memory.idleError ? 1 : 0);
  if (failed) console.error(`\n${failed} case(s) failed to run`);
  return failed ? 1 : 0;
}

/** Runs main() and exits with its status (bench/run.js, or `node -r tsx/cjs bench/main.ts`). */
export function runAndExit(): void {
  main().then(
    (code) => process.exit(code),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}

if (require.main === module) runAndExit();
