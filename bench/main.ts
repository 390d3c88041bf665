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
 *
 * This file is the CLI (arguments, --help) and the run's order: each chosen case with its limit,
 * its teardown and a collection after it, then the memory. The rest: cases.ts (what each case
 * runs), limits.ts (the raw round trip's echo client), context.ts (what the cases share),
 * timing.ts (warm-up, rounds, alternation with the limit), memory.ts (RSS and the idle-memory
 * driver), report.ts (the table and the JSON).
 */
import { Command, InvalidArgumentError } from "commander";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { ALL_NAMES, CASES, IDLE_MEMORY } from "./cases";
import { Context } from "./context";
import { MEMORY_TARGET_MIB, measureIdleMemory, procs } from "./memory";
import { MemoryReport, Result, fmt, jsonReport, meanStd, report } from "./report";
import { Running, Settings, deadline, timeit } from "./timing";
import { DURABLE_CASES, DURABLE_TARGET, startDurableCluster } from "./durable";

const ROOT = path.resolve(__dirname, "..");

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
    .option("--durable", `durable mode on a 3-node RabbitMQ cluster the run starts and removes: ${DURABLE_CASES.join(", ")}, judged against a raw quorum-queue round trip with confirms`)
    .showHelpAfterError()
    .exitOverride();
  try {
    program.parse(process.argv);
  } catch (err) {
    return (err as { exitCode?: number }).exitCode ?? 2;
  }
  const opts = program.opts<{ json?: string; rounds: number; seconds: number; warmup: number; durable?: boolean }>();
  const names: string[] = program.args;
  const allowed = opts.durable ? DURABLE_CASES : ALL_NAMES;
  const unknown = names.filter((n) => !allowed.includes(n));
  if (unknown.length) {
    console.error(`unknown case${unknown.length > 1 ? "s" : ""}${opts.durable ? " in durable mode" : ""}: ${unknown.join(", ")}\navailable:\n  ${allowed.join("\n  ")}`);
    return 2;
  }
  const wanted = new Set(names.length ? names : allowed);
  // A chosen case brings the limit it is judged against.
  for (const c of CASES) if (wanted.has(c.name)) for (const l of [c.limit, c.bound]) if (l) wanted.add(l);
  // In durable mode every warren case has the one target of that mode, and no Ray figure beside it.
  const chosen = CASES.filter((c) => wanted.has(c.name)).map((c) => (opts.durable && c.kind === "warren" ? { ...c, target: DURABLE_TARGET, ray: undefined } : c));
  const settings: Settings = { warmup: opts.warmup, rounds: opts.rounds, seconds: opts.seconds };
  const commit = gitCommit();
  const started = performance.now();
  const date = new Date().toISOString();

  console.error(`warren bench: ${chosen.length} case(s)${wanted.has(IDLE_MEMORY) ? " + idle memory" : ""}; warm-up ${settings.warmup} s, ` +
    `${settings.rounds} rounds of >= ${settings.seconds} s; ${os.cpus().length} CPUs, Node ${process.version}; commit ${commit}`);

  const durable = opts.durable ? await startDurableCluster() : undefined;
  const ctx = durable ? new Context(durable.address, true) : new Context();
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
        result.note = run?.note?.();
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
    await durable?.stop();
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
  console.log(`\n${opts.durable ? "durable mode, on a 3-node RabbitMQ cluster on this machine; " : ""}commit ${commit}, ${date}; warm-up ${settings.warmup} s, ${settings.rounds} rounds of >= ${settings.seconds} s; ` +
    `${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim() ?? "?"}), Node ${process.version}; total ${elapsed.toFixed(0)} s`);

  if (opts.json) {
    fs.writeFileSync(opts.json, JSON.stringify(jsonReport(results, memory, settings, commit, date, elapsed), null, 2) + "\n");
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
