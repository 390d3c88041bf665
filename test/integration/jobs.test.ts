// Jobs (Ray's): a driver's work ends with it. A driver SIGKILLed with 12 tasks queued for 2 CPUs:
// the head sees its inbox gone and ends its job (FAILED); its queued tasks never start, its two
// running ones are stopped, its non-detached actor dies and its detached one lives, and its
// 9 MiB object is freed from its node's store. listJobs shows both drivers' jobs.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFileSync, spawn } from "node:child_process";
import * as warren from "warren";
import { Cluster, waitForCondition } from "warren/testing";
import { Where } from "../fixtures/placement";
import { firstLine } from "../helpers";

const ROOT = path.join(__dirname, "..", "..");
const DRIVER = path.join(__dirname, "..", "fixtures", "job_driver.ts");
let cluster: Cluster;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "warren-jobs-"));

beforeAll(async () => {
  cluster = await Cluster.start({ head: { numCpus: 2 } });
  await warren.init({ address: cluster.address, cluster: cluster.cluster });
}, 60_000);

afterAll(async () => {
  await warren.shutdown();
  await cluster.shutdown();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const markers = () => fs.readdirSync(tmp).filter((f) => f.startsWith("task-"));

/** Workers running touchThenSleep now: a worker's process title is the task it runs. */
function running(): number[] {
  return fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return fs.readFileSync(`/proc/${p}/cmdline`, "latin1").startsWith("warren::touchThenSleep");
    } catch {
      return false;
    }
  }).map(Number);
}

test("a SIGKILLed driver's job ends: queued tasks never start, running ones stop, its actors and objects go, detached ones stay", async () => {
  const d = spawn(process.execPath, ["-r", "tsx/cjs", DRIVER, cluster.address, cluster.cluster, tmp], { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] });
  const line = await firstLine(d);
  const { jobId, object } = JSON.parse(line) as { jobId: string; object: string };
  const [node] = await warren.nodes();
  const large = `${node.ObjectStorePath}.large`;
  expect(fs.readdirSync(large)).toContain(object);
  await waitForCondition(() => markers().length === 2, 30); // two run, ten wait for a CPU
  expect(running()).toHaveLength(2);

  d.kill("SIGKILL");
  await waitForCondition(async () => (await warren.state.listJobs({ filters: { job_id: jobId } }))[0]?.status === "FAILED", 15);
  const [ended] = await warren.state.listJobs({ filters: { job_id: jobId }, detail: true });
  expect(ended).toMatchObject({ type: "DRIVER", status: "FAILED", driver_pid: d.pid, message: "the driver exited without shutdown()" });
  expect(ended.end_time).toBeGreaterThanOrEqual(ended.start_time);
  const mine = (await warren.state.listJobs()).find((j) => j.job_id !== jobId);
  expect(mine).toMatchObject({ status: "RUNNING", driver_pid: process.pid });

  // Its running tasks were stopped, its object freed, its owned actor killed; the detached one lives.
  await waitForCondition(() => running().length === 0, 10);
  await waitForCondition(() => !fs.readdirSync(large).includes(object), 10);
  await waitForCondition(async () => (await warren.state.listActors({ filters: { name: "mortal" } }))[0]?.state === "DEAD", 10);
  const survivor = await warren.getActor<Where>("survivor", { namespace: "jobs-test" });
  expect(await warren.get(survivor.node.remote())).toBe(node.NodeID);
  // The ten queued tasks never start: the CPUs are free again, and the node has dropped them.
  await waitForCondition(async () => (await warren.availableResources()).CPU === 2, 10);
  expect(await warren.get(Where.options({ numCpus: 2 }).remote().node.remote())).toBe(node.NodeID); // both CPUs placeable
  expect(markers()).toHaveLength(2);
}, 90_000);

test("a driver that calls shutdown() ends its job as SUCCEEDED", async () => {
  const out = execFileSync(process.execPath, ["-r", "tsx/cjs", DRIVER, cluster.address, cluster.cluster, tmp, "quick"], { cwd: ROOT, encoding: "utf8" });
  const { jobId } = JSON.parse(out.trim().split("\n").pop()!) as { jobId: string };
  const [job] = await warren.state.listJobs({ filters: { job_id: jobId }, detail: true });
  expect(job).toMatchObject({ status: "SUCCEEDED", message: "the driver called shutdown()" });
  expect(job.entrypoint).toContain("job_driver.ts");
}, 60_000);
