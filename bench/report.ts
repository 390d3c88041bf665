/**
 * The benchmark's report: the printed table (limits, then warren's figures beside their limits,
 * ratios and targets, then memory) and the `--json` file. A ratio divides by the case's limit as
 * measured in rounds alternating with it (`paired`), else by the limit measured on its own.
 */
import * as os from "node:os";
import { Case, IDLE_MEMORY } from "./cases";
import { MEMORY_TARGET_MIB, MemorySnapshot } from "./memory";
import { Settings, Stats } from "./timing";

export interface Result {
  c: Case;
  stats?: Stats;
  /** The case's limit, measured in rounds alternating with the case's own (timeit). */
  paired?: Stats;
  error?: string;
  seconds: number;
  /** What else the case measured (Running.note). */
  note?: string;
}

/** Ray's published figures as DESIGN.md gives them. */
function fmtRay(x: number | undefined): string {
  return x === undefined ? "" : x.toLocaleString("en-US", { maximumFractionDigits: 1 });
}

export function fmt(x: number | undefined): string {
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
  const short = { raw_roundtrip_sequential: "raw seq", raw_roundtrip_pipelined: "raw pipe", memcpy_gigabytes: "memcpy", tcp_loopback_gigabytes: "tcp", raw_queue_declares: "raw queues" }[c.limit];
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

export function meanStd(r: Result): string {
  if (r.error) return "FAILED";
  if (!r.stats) return "-";
  return `${fmt(r.stats.mean)} ± ${fmt(r.stats.std)}`;
}

export interface MemoryReport {
  /** `heap` is the driver's process.memoryUsage() in MiB, after full collections. */
  afterRun?: MemorySnapshot & { cluster: string; heap: Record<string, number> };
  idle?: MemorySnapshot & { targetMiB: number; pass: boolean };
  idleError?: string;
}

export function report(results: Result[], memory: MemoryReport): string {
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
    out.push("warren (ops/s unless marked; ratio = warren / limit; limit value: measured in rounds alternating with the case's)");
    const rows = [["case", "warren mean ± std", "Ray", "limit", "limit value", "ratio", "target", "met"]];
    for (const r of cases) {
      const limit = limitOf(r, byName);
      const met = targetMet(r, limit);
      const unit = r.c.unit === "ops/s" ? "" : ` ${r.c.unit}`;
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
    for (const r of cases) {
      const bound = r.c.bound && byName.get(r.c.bound)?.stats?.mean;
      if (bound && r.stats) out.push(`${r.c.name}: ${(r.stats.mean / bound).toFixed(2)} of ${r.c.bound} (${fmt(bound)}), the most this machine allows it`);
      if (r.note) out.push(`${r.c.name}: ${r.note}`);
    }
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

/** The `--json` file: every figure, its limit (on its own and paired), ratio, target, and the run. */
export function jsonReport(results: Result[], memory: MemoryReport, settings: Settings, commit: string, date: string, elapsed: number) {
  const byName = new Map(results.map((r) => [r.c.name, r]));
  const ok = results.filter((r) => r.stats);
  return {
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
}
