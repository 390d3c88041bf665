// Task events in the head: tasks of a driver that has exited are still listed, with where they
// ran, when they started and ended, and how they failed; the head keeps at most
// WARREN_TASKS_KEPT_PER_JOB of a job; the timeline (API and CLI) is Chrome trace JSON of the runs.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import * as warren from "warren";
import { Cluster, waitForCondition } from "warren/testing";
import { firstLine } from "../helpers";

const ROOT = path.join(__dirname, "..", "..");
const DRIVER = path.join(__dirname, "..", "fixtures", "events_driver.ts");
const CLI = path.join(ROOT, "dist", "src", "cli", "main.js");
const KEPT_PER_JOB = 8;
const run = promisify(execFile);
let cluster: Cluster;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "warren-events-"));

beforeAll(async () => {
  process.env.WARREN_TASKS_KEPT_PER_JOB = String(KEPT_PER_JOB); // the head node inherits it
  cluster = await Cluster.start({ head: { numCpus: 2 } });
  delete process.env.WARREN_TASKS_KEPT_PER_JOB;
  await warren.init({ address: cluster.address, cluster: cluster.cluster });
}, 60_000);

afterAll(async () => {
  await warren.shutdown();
  await cluster.shutdown();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Runs the driver to its end; returns its job id and the time span it lived in. */
async function driver(n: number): Promise<{ jobId: string; from: number; to: number }> {
  const from = Date.now();
  const { stdout } = await run(process.execPath, ["-r", "tsx/cjs", DRIVER, cluster.address, cluster.cluster, String(n)], { cwd: ROOT });
  return { ...JSON.parse(stdout.trim().split("\n").pop()!), from, to: Date.now() };
}

/** The job's tasks once every one has its run (its worker's events come within about a second). */
async function tasksOf(jobId: string, count: number): Promise<warren.TaskRow[]> {
  let rows: warren.TaskRow[] = [];
  await waitForCondition(async () => {
    rows = await warren.state.listTasks({ filters: { job_id: jobId }, detail: true });
    return rows.length === count && rows.every((r) => r.node_id !== null && r.end_time_ms !== null);
  }, 10);
  return rows;
}

let first: { jobId: string; from: number; to: number };

test("an exited driver's tasks are listed FINISHED or FAILED, with node, worker, start and end times", async () => {
  first = await driver(3);
  const rows = await tasksOf(first.jobId, 4);
  const done = rows.filter((r) => r.name === "events_add");
  expect(done).toHaveLength(3);
  for (const r of done) {
    expect(r).toMatchObject({ state: "FINISHED", func_or_class_name: "add", type: "NORMAL_TASK", node_id: cluster.headId, job_id: first.jobId });
    expect(r.worker_pid).toBeGreaterThan(0);
    expect(r.worker_id).toMatch(/^[0-9a-f]+$/);
    expect(Number.isInteger(r.start_time_ms) && Number.isInteger(r.end_time_ms)).toBe(true);
    expect(r.creation_time_ms!).toBeGreaterThanOrEqual(first.from);
    expect(r.start_time_ms!).toBeGreaterThanOrEqual(Math.floor(r.creation_time_ms!) - 1);
    expect(r.end_time_ms!).toBeGreaterThanOrEqual(r.start_time_ms!);
    expect(r.end_time_ms!).toBeLessThanOrEqual(first.to);
  }
  const [failed] = rows.filter((r) => r.name === "throwType");
  expect(failed).toMatchObject({ state: "FAILED", error_type: "TaskError", node_id: cluster.headId });
  expect(failed.error_message).toContain("TypeError: bad type");

  const summary = await warren.state.summarizeTasks();
  expect(summary.summary.add.state_counts.FINISHED).toBeGreaterThanOrEqual(3);
  expect(summary.summary.throwType.state_counts.FAILED).toBeGreaterThanOrEqual(1);
});

test("the head keeps at most WARREN_TASKS_KEPT_PER_JOB tasks of a job, the newest", async () => {
  const { jobId } = await driver(20);
  await waitForCondition(async () => (await warren.state.listTasks({ filters: { job_id: jobId }, detail: true })).some((r) => r.name === "throwType"), 10);
  const rows = await warren.state.listTasks({ filters: { job_id: jobId }, detail: true, limit: 1000 });
  expect(rows).toHaveLength(KEPT_PER_JOB);
  // The first job's tasks are untouched by this one's bound.
  expect(await warren.state.listTasks({ filters: { job_id: first.jobId } })).toHaveLength(4);
});

test("a SIGKILLed driver's queued and running tasks are FAILED once the head ends its job", async () => {
  const d = spawn(process.execPath, ["-r", "tsx/cjs", DRIVER, cluster.address, cluster.cluster, "5", "hang"], { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] });
  const { jobId, tasks } = JSON.parse(await firstLine(d)) as { jobId: string; tasks: string[] };
  d.kill("SIGKILL");
  let rows: warren.TaskRow[] = [];
  await waitForCondition(async () => {
    rows = await warren.state.listTasks({ filters: { job_id: jobId }, detail: true });
    return rows.length === 5 && rows.every((r) => r.state === "FAILED");
  }, 15);
  expect(rows.map((r) => r.task_id).sort()).toEqual([...tasks].sort());
  for (const r of rows) expect(r).toMatchObject({ error_type: "TaskCancelledError", error_message: `its job ${jobId} ended: the driver exited without shutdown()` });
  expect(rows.filter((r) => r.start_time_ms !== null)).toHaveLength(2); // the two that had a CPU ran
});

test("warren.timeline() and `warren timeline -o` write Chrome trace events of the runs", async () => {
  const rows = await tasksOf(first.jobId, 4);
  const file = path.join(tmp, "api.json");
  const events = await warren.timeline(file);
  expect(JSON.parse(fs.readFileSync(file, "utf8"))).toEqual(events);
  const out = path.join(tmp, "cli.json");
  const { stdout } = await run(process.execPath, [CLI, "timeline", "--address", cluster.address, "--cluster", cluster.cluster, "-o", out]);
  expect(stdout).toContain(out);
  for (const trace of [events, JSON.parse(fs.readFileSync(out, "utf8")) as warren.TraceEvent[]]) {
    const node = trace.find((e) => e.ph === "M" && e.name === "process_name" && e.args.name === `node ${cluster.headId}`)!;
    for (const r of rows) {
      const e = trace.find((x) => x.ph === "X" && x.args.task_id === r.task_id)!;
      expect(e).toMatchObject({ name: r.name, pid: node.pid, tid: r.worker_pid, args: { job_id: first.jobId, worker_id: r.worker_id, node_id: cluster.headId } });
      expect(Math.abs(e.ts! / 1000 - r.start_time_ms!)).toBeLessThan(1);
      expect(e.dur!).toBeGreaterThanOrEqual(0);
      expect(Math.abs((e.ts! + e.dur!) / 1000 - r.end_time_ms!)).toBeLessThan(1);
    }
    expect(trace.filter((e) => e.ph === "X").every((e) => Number.isInteger(e.pid) && Number.isInteger(e.tid) && e.dur! < 10_000_000)).toBe(true);
  }
}, 60_000);
