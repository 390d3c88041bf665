// The `warren` command, run compiled (`node dist/src/cli/main.js`) against the real broker: a head
// and a node started in the background, a driver joining them, status/list/summary, stop.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { ChildProcess, execFile, spawn } from "node:child_process";
import * as amqp from "amqplib";
import * as warrenApi from "warren";
import { waitForCondition } from "warren/testing";
import { DEFAULT_ADDRESS } from "../../src/transport";
import * as net from "node:net";
import { nodeIp } from "../../src/node/resources";
import { brokerHas, firstLine, freePort, processesWith } from "../helpers";

const ROOT = path.join(__dirname, "..", "..");
const CLI = path.join(ROOT, "dist", "src", "cli", "main.js");
const DRIVER = path.join(__dirname, "..", "fixtures", "cli_driver.ts");
const cluster = `cli-${randomBytes(5).toString("hex")}`;
const address = process.env.WARREN_ADDRESS ?? DEFAULT_ADDRESS;
const NODES_DIR = path.join(os.tmpdir(), "warren", "nodes");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; resolves with its exit code and output, never rejects. */
function warren(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 45_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }));
  });
}

/** The records `warren start` wrote for this test's cluster. */
function records(name = cluster): { pid: number; nodeId: string; isHead: boolean }[] {
  if (!fs.existsSync(NODES_DIR)) return [];
  return fs.readdirSync(NODES_DIR).filter((f) => f.endsWith(".json")).flatMap((f) => {
    try {
      const r = JSON.parse(fs.readFileSync(path.join(NODES_DIR, f), "utf8"));
      return r.cluster === name ? [r] : [];
    } catch {
      return [];
    }
  });
}

/** Processes of this test's cluster: its nodes and their workers (WARREN_NODE names the cluster). */
const clusterProcesses = (name = cluster) => processesWith(`"cluster":"${name}"`);
/** A second cluster, for `stop --force`, and a third whose head is killed and started again. */
const forced = `${cluster}-f`;
const restarted = `${cluster}-r`;
const RESTART_DRIVER = path.join(__dirname, "..", "fixtures", "head_restart_driver.ts");
const LEFTOVER_DRIVER = path.join(__dirname, "..", "fixtures", "leftover_driver.ts");

let driver: ChildProcess | undefined;
/** The driver that lives through a head restart. */
let live: ChildProcess | undefined;
let headId = "";
let nodeId = "";

beforeAll(() => {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before these tests`);
});

afterAll(async () => {
  for (const d of [driver, live]) if (d && d.exitCode === null && d.signalCode === null) d.kill("SIGKILL");
  const conn = await amqp.connect(address);
  const ch = await conn.createChannel();
  for (const name of [cluster, forced, restarted]) {
    await warren("stop", "--cluster", name, "--force");
    for (const pid of clusterProcesses(name)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    for (const r of records(name)) fs.rmSync(path.join(NODES_DIR, `${r.nodeId}.json`), { force: true });
    fs.rmSync(path.join(os.tmpdir(), "warren", `session_${name}`), { recursive: true, force: true });
    // Asking a stopped cluster (the last `status`) declares its exchanges again: remove them.
    for (const ex of ["tasks", "control", "logs"]) await ch.deleteExchange(`warren.${name}.${ex}`).catch(() => undefined);
  }
  await conn.close();
});

describe("usage", () => {
  test.each([[[]], [["start"]], [["stop"]], [["status"]], [["list"]], [["summary"]], [["timeline"]]])("warren %p --help", async (cmd) => {
    const r = await warren(...cmd, "--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: warren${cmd.length ? ` ${cmd[0]}` : ""}`);
    expect(r.stdout).toMatch(/--help/);
  });

  test("the top-level help names every command", async () => {
    const r = await warren("--help");
    for (const c of ["start", "stop", "cleanup", "status", "list", "summary", "timeline"]) expect(r.stdout).toMatch(new RegExp(`^  ${c} `, "m"));
  });

  test.each([
    [["frobnicate"], /unknown command 'frobnicate'/],
    [["start", "--head", "--cluster", cluster, "--resources", "{not json"], /--resources .* must be a JSON object/],
    [["start", "--head", "--cluster", cluster, "--resources", "[1]"], /must be a JSON object/],
    [["start", "--head", "--cluster", cluster, "--num-cpus", "-1"], /invalid --num-cpus: must be a number >= 0 \(got -1\)/],
    [["start", "--head", "--cluster", cluster, "--num-gpus", "two"], /--num-gpus .* must be a number/],
    [["start", "--head", "--cluster", cluster, "--resources", '{"CPU": 2}'], /use --num-cpus instead/],
    [["start", "--head", "--cluster", cluster, "--resources", '{"Custom1": -1}'], /Custom1: must be a number >= 0/],
    [["start", "--head", "--cluster", "has space"], /invalid --cluster/],
    [["start", "--address", "http://nope", "--cluster", cluster], /invalid --address: must be an amqp:\/\/ or amqps:\/\/ URL, a comma-separated list of them/],
    [["start"], /pass --head to start a new cluster, or --address and --cluster to join/],
    [["start", "--head", "--bogus"], /unknown option '--bogus'/],
    [["start", "--head", "--cluster", cluster, "--object-manager-port", "70000"], /--object-manager-port .* must be a TCP port, 0 to 65535/],
    [["list", "things"], /Allowed choices are tasks, actors, objects, nodes/],
    [["list", "tasks", "--cluster", cluster, "--filter", "state"], /must be key=value or key!=value/],
    [["list", "tasks", "--cluster", cluster, "--limit", "-2"], /--limit .* must be an integer >= 0/],
    [["list", "tasks", "--cluster", cluster, "--format", "xml"], /Allowed choices are table, json/],
    [["summary", "nodes"], /Allowed choices are tasks, actors, objects/],
  ])("warren %p is a usage error (exit code 2)", async (args, message) => {
    const r = await warren(...args);
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
  });

  test("bad input started nothing", () => {
    expect(records()).toEqual([]);
    expect(clusterProcesses()).toEqual([]);
  });
});

describe("a cluster started with warren start", () => {
  test("start --head runs a head in the background and says what to do next", async () => {
    const r = await warren("start", "--head", "--num-cpus", "1", "--cluster", cluster);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    headId = /Node ID:\s+([0-9a-f]{40})/.exec(r.stdout)![1];
    expect(r.stdout).toContain(`cluster "${cluster}"`);
    expect(r.stdout).toContain(`warren start --address '${address.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@")}' --cluster ${cluster}`);
    expect(r.stdout).toMatch(new RegExp(`await warren\\.init\\(\\{ .*cluster: "${cluster}" \\}\\)`));
    expect(r.stdout).not.toMatch(/guest:guest/); // the password is never printed
    const head = records().find((n) => n.nodeId === headId)!;
    expect(head.isHead).toBe(true);
    expect(clusterProcesses()).toContain(head.pid); // the CLI has exited; its node runs on
    expect(fs.existsSync(path.join(os.tmpdir(), "warren", `session_${cluster}`, `node_${headId.slice(0, 12)}`, "node.log"))).toBe(true);
  });

  test("a second head for the same cluster is refused", async () => {
    const r = await warren("start", "--head", "--num-cpus", "1", "--cluster", cluster);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`cluster "${cluster}" .* already has a live head \\(node ${headId}`));
    expect(records()).toHaveLength(1);
  });

  test("joining a cluster that has no head is an error", async () => {
    const r = await warren("start", "--address", address, "--cluster", `${cluster}-none`, "--num-cpus", "1");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`no head of cluster "${cluster}-none" answers`));
    // (the probe declared that cluster's exchanges: remove them)
    const conn = await amqp.connect(address);
    const ch = await conn.createChannel();
    for (const ex of ["tasks", "control", "logs"]) await ch.deleteExchange(`warren.${cluster}-none.${ex}`);
    await conn.close();
  });

  test("start --address --cluster joins a node with custom resources, serving its objects on the port asked", async () => {
    const port = await freePort();
    const r = await warren("start", "--address", address, "--cluster", cluster, "--num-cpus", "1", "--resources", '{"Custom1": 1}', "--object-manager-port", String(port));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    nodeId = /Node ID:\s+([0-9a-f]{40})/.exec(r.stdout)![1];
    expect(r.stdout).toMatch(/joined warren cluster .*\(2 nodes now\)/);
    expect(r.stdout).toMatch(/Custom1 1\.0/);
    expect(records().map((n) => n.nodeId).sort()).toEqual([headId, nodeId].sort());
    const sock = net.connect(port, nodeIp()); // a node of `warren start` serves on the machine's address
    await new Promise<void>((resolve, reject) => sock.once("connect", resolve).once("error", reject));
    sock.destroy();
  });

  test("status shows both nodes, their resources and no demands", async () => {
    const r = await warren("status", "--cluster", cluster);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const active = r.stdout.slice(r.stdout.indexOf("Active:"), r.stdout.indexOf("Dead:"));
    expect(active).toContain(`node_${headId} (head, ${os.hostname()}`);
    expect(active).toContain(`node_${nodeId} (${os.hostname()}`);
    expect(r.stdout).toMatch(/Dead:\n \(no dead nodes\)/);
    expect(r.stdout).toMatch(/^ 0\.0\/2\.0 CPU$/m);
    expect(r.stdout).toMatch(/^ 0\.0\/1\.0 Custom1$/m);
    expect(r.stdout).toMatch(/^ \d+\.\d\dGiB\/\d+\.\d\dGiB memory$/m);
    expect(r.stdout).toMatch(/^ \d+\.\d\dGiB\/\d+\.\d\dGiB object_store_memory$/m);
    expect(r.stdout).not.toMatch(/ node:/);
    expect(r.stdout).toMatch(/Demands:\n \(no resource demands\)/);
  });

  test("a driver joins; status shows its infeasible demand", async () => {
    driver = spawn(process.execPath, ["-r", "tsx/cjs", DRIVER, cluster], { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    driver.stderr!.on("data", (d) => (err += d));
    await new Promise<void>((resolve, reject) => {
      driver!.stdout!.on("data", (d) => {
        out += d;
        if (out.includes('"ready":true')) resolve();
      });
      driver!.once("exit", (code) => reject(new Error(`the driver exited (${code}): ${err}`)));
    });
    expect(JSON.parse(out.trim().split("\n").pop()!)).toEqual({ ready: true, nine: 9 });
    let r: Run | undefined;
    await waitForCondition(async () => {
      r = await warren("status", "--cluster", cluster);
      return r.stdout.includes("{'CPU': 1, 'Special': 1}: 1+ pending tasks/actors (infeasible)");
    }, 20);
    expect(r!.code).toBe(0);
  });

  test("list nodes", async () => {
    const table = await warren("list", "nodes", "--cluster", cluster);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/Total: 2/);
    expect(table.stdout).toMatch(/^ +NODE_ID +NODE_IP +IS_HEAD_NODE +STATE +NODE_NAME +RESOURCES_TOTAL$/m);
    expect(table.stdout).toMatch(new RegExp(`^0 +${headId} +[\\d.]+ +true +ALIVE`, "m"));
    const json = await warren("list", "nodes", "--cluster", cluster, "--format", "json");
    const rows = JSON.parse(json.stdout) as { node_id: string; is_head_node: boolean; state: string; resources_total: Record<string, number> }[];
    expect(rows.map((n) => n.node_id).sort()).toEqual([headId, nodeId].sort());
    expect(rows.find((n) => n.node_id === nodeId)!.resources_total.Custom1).toBe(1);
    const heads = JSON.parse((await warren("list", "nodes", "--cluster", cluster, "--filter", "is_head_node=true", "--format", "json")).stdout);
    expect(heads.map((n: { node_id: string }) => n.node_id)).toEqual([headId]);
  });

  test("list jobs: the driver's, running", async () => {
    const r = await warren("list", "jobs", "--cluster", cluster, "--format", "json");
    expect(r.code).toBe(0);
    const jobs = JSON.parse(r.stdout) as { status: string; driver_pid: number; type: string }[];
    expect(jobs).toContainEqual(expect.objectContaining({ status: "RUNNING", driver_pid: driver!.pid, type: "DRIVER" }));
    const table = await warren("list", "jobs", "--cluster", cluster);
    expect(table.stdout).toMatch(/JOB_ID +TYPE +STATUS +ENTRYPOINT +START_TIME +END_TIME +DRIVER_PID/);
  });

  test("list tasks with filters and a limit", async () => {
    const finished = await warren("list", "tasks", "--cluster", cluster, "--filter", "state=FINISHED");
    expect(finished.code).toBe(0);
    expect(finished.stdout).toMatch(/Total: 1/);
    expect(finished.stdout).toMatch(/^ +TASK_ID +ATTEMPT_NUMBER +NAME +STATE/m);
    expect(finished.stdout).toMatch(/^0 +[0-9a-f]+ +0 +square +FINISHED/m);
    const others = JSON.parse((await warren("list", "tasks", "--cluster", cluster, "--filter", "state!=FINISHED", "--format", "json", "--detail")).stdout);
    expect(others).toHaveLength(1);
    expect(others[0]).toMatchObject({ name: "square", state: "PENDING_NODE_ASSIGNMENT", required_resources: "CPU:1,Special:1" });
    const limited = JSON.parse((await warren("list", "tasks", "--cluster", cluster, "--limit", "1", "--format", "json")).stdout);
    expect(limited).toHaveLength(1);
  });

  test("summary tasks, actors, objects", async () => {
    const tasks = await warren("summary", "tasks", "--cluster", cluster);
    expect(tasks.code).toBe(0);
    expect(tasks.stdout).toMatch(/total_tasks: 2/);
    expect(tasks.stdout).toMatch(/^0 +square +(FINISHED: 1, PENDING_NODE_ASSIGNMENT: 1|PENDING_NODE_ASSIGNMENT: 1, FINISHED: 1) +NORMAL_TASK$/m);
    const json = JSON.parse((await warren("summary", "tasks", "--cluster", cluster, "--format", "json")).stdout);
    expect(json).toMatchObject({ total_tasks: 2, summary: [{ func_or_class_name: "square", type: "NORMAL_TASK", state_counts: { FINISHED: 1, PENDING_NODE_ASSIGNMENT: 1 } }] });
    const actors = await warren("summary", "actors", "--cluster", cluster);
    expect(actors.code).toBe(0);
    expect(actors.stdout).toMatch(/total_actors: 0/);
    const objects = JSON.parse((await warren("summary", "objects", "--cluster", cluster, "--format", "json")).stdout);
    // the driver's put (1 KiB) at least; refs it dropped may not be collected yet
    expect(objects.total_objects).toBeGreaterThanOrEqual(1);
    const finished = objects.summary.find((g: { task_status: string }) => g.task_status === "FINISHED");
    expect(finished).toMatchObject({ reference_type: "LOCAL_REFERENCE" });
    expect(finished.total_size).toBeGreaterThanOrEqual(1024);
    const table = await warren("summary", "objects", "--cluster", cluster);
    expect(table.stdout).toMatch(/^ +TASK_STATUS +REFERENCE_TYPE +COUNT +TOTAL_SIZE$/m);
  });

  test("stop stops both nodes and removes the cluster from the broker; status then fails clearly", async () => {
    driver!.stdin!.end(); // the driver leaves
    if (driver!.exitCode === null) await new Promise((res) => driver!.once("exit", res));
    // a record of a node that is gone (its process ended without `warren stop`) is cleaned up silently
    const stale = path.join(NODES_DIR, `${"0".repeat(40)}.json`);
    fs.writeFileSync(stale, JSON.stringify({ pid: 2 ** 22 + 1, cluster, nodeId: "0".repeat(40), isHead: false, sessionDir: "", logFile: "", address, startedAt: "" }));
    const r = await warren("stop", "--cluster", cluster);
    expect(r.code).toBe(0);
    expect(fs.existsSync(stale)).toBe(false);
    expect(r.stdout).toMatch(new RegExp(`Stopped 2 warren node\\(s\\) of cluster "${cluster}"`));
    expect(r.stdout).toContain(`stopped head ${headId.slice(0, 12)}`);
    expect(clusterProcesses()).toEqual([]);
    expect(records()).toEqual([]);
    expect(await brokerHas("queue", `warren.${cluster}.shape.CPU:1,Special:1`)).toBe(false);
    expect(await brokerHas("exchange", `warren.${cluster}.tasks`)).toBe(false);
    const again = await warren("stop", "--cluster", cluster);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/No warren nodes of cluster .* are running/);
    const s = await warren("status", "--cluster", cluster);
    expect(s.code).toBe(1);
    expect(s.stderr).toMatch(new RegExp(`no cluster "${cluster}" answers on amqp://[^ ]*\\*\\*\\*@`));
    expect(s.stderr).toMatch(/warren start --head/);
  });

  test("stop --force kills a node and its workers at once", async () => {
    const started = await warren("start", "--head", "--num-cpus", "2", "--cluster", forced);
    expect(started.code).toBe(0);
    // the head prestarts a worker per CPU: wait for them, they are in the node's process group
    await waitForCondition(() => clusterProcesses(forced).length === 3, 20);
    const r = await warren("stop", "--cluster", forced, "--force");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/killed head [0-9a-f]{12}/);
    expect(r.stdout).toMatch(/Stopped 1 warren node\(s\)/);
    await waitForCondition(() => clusterProcesses(forced).length === 0, 5); // SIGKILLed workers are reaped
    expect(records(forced)).toEqual([]);
    expect(await brokerHas("exchange", `warren.${forced}.tasks`)).toBe(false);
  });
});

describe("a head that dies and is started again", () => {
  /** Runs the head-restart driver in `mode` and returns the JSON line it printed. */
  async function drive(mode: "make" | "use"): Promise<{ n: number; node: string; nine?: number }> {
    const out = await new Promise<Run>((resolve) => {
      execFile(process.execPath, ["-r", "tsx/cjs", RESTART_DRIVER, mode, restarted], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? -1 : 0, stdout, stderr }));
    });
    expect(out.stderr).toBe("");
    return JSON.parse(out.stdout.trim().split("\n").pop()!);
  }

  const list = async () => JSON.parse((await warren("list", "nodes", "--cluster", restarted, "--format", "json")).stdout) as { node_id: string; state: string; is_head_node: boolean }[];
  const registry = path.join(os.tmpdir(), "warren", `session_${restarted}`, "head.lmdb");
  /** SIGKILLs the head node's process group (the daemon and its workers), as a crash of its machine would. */
  async function killHead(): Promise<void> {
    const head = records(restarted).find((r) => r.isHead)!;
    process.kill(-head.pid, "SIGKILL");
    await waitForCondition(() => !clusterProcesses(restarted).includes(head.pid), 20);
  }

  test("reloads its registry: the nodes that live on and a detached named actor with its state", async () => {
    expect((await warren("start", "--head", "--num-cpus", "1", "--cluster", restarted)).code).toBe(0);
    const joined = await warren("start", "--address", address, "--cluster", restarted, "--num-cpus", "1", "--resources", '{"Keeper": 1}');
    expect(joined.code).toBe(0);
    const keeperNode = /Node ID:\s+([0-9a-f]{40})/.exec(joined.stdout)![1];
    const firstHead = records(restarted).find((r) => r.isHead)!.nodeId;
    expect(await drive("make")).toEqual({ n: 5, node: keeperNode });

    // A driver that lives through it, counting on the actor and running tasks all along.
    live = spawn(process.execPath, ["-r", "tsx/cjs", RESTART_DRIVER, "live", restarted], { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
    let lines: string[] = [];
    live.stdout!.on("data", (d) => (lines = [...lines, ...String(d).split("\n").filter((l) => l !== "")]));
    await waitForCondition(() => lines.length >= 3, 30);
    await killHead();
    const again = await warren("start", "--head", "--num-cpus", "1", "--cluster", restarted);
    expect(again.stderr).toBe("");
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`Restarted the head node of warren cluster "${restarted}" from its registry ${registry}`);
    expect(again.stdout).toMatch(/it knew 2 node\(s\) and 1 actor\(s\)/);
    const secondHead = /Node ID:\s+([0-9a-f]{40})/.exec(again.stdout)![1];

    const counted = lines.length;
    await waitForCondition(() => lines.length >= counted + 5, 30);
    live.stdin!.end();
    await new Promise((res) => live!.once("exit", res));
    // Every call and task came back, and every call ran once: the counts go 6, 7, 8, ... without a gap.
    expect(lines.filter((l) => !l.startsWith("ok "))).toEqual([]);
    const counts = lines.map((l) => Number(l.split(" ")[1]));
    expect(counts).toEqual(counts.map((_, i) => 6 + i));

    // The actor lived on with its node: found by name, its count goes on.
    expect(await drive("use")).toEqual({ n: 6 + counts.length, node: keeperNode, nine: 9 });
    const nodes = await list();
    expect(nodes.find((n) => n.node_id === firstHead)).toMatchObject({ state: "DEAD", is_head_node: true });
    expect(nodes.find((n) => n.node_id === secondHead)).toMatchObject({ state: "ALIVE", is_head_node: true });
    expect(nodes.find((n) => n.node_id === keeperNode)).toMatchObject({ state: "ALIVE", is_head_node: false });
  });

  test("without its registry, live nodes register again by themselves", async () => {
    const keeperNode = records(restarted).find((r) => !r.isHead)!.nodeId;
    await killHead();
    fs.rmSync(registry, { force: true });
    const fresh = await warren("start", "--head", "--num-cpus", "1", "--cluster", restarted);
    expect(fresh.code).toBe(0);
    expect(fresh.stdout).toContain(`Started the head node of warren cluster "${restarted}".`);
    // Its next heartbeat hears that the head does not know it, and it registers.
    await waitForCondition(async () => (await list()).some((n) => n.node_id === keeperNode && n.state === "ALIVE"), 20);
  });

  test("stop ends the cluster: its registry is removed, so the next head starts a new one", async () => {
    expect((await warren("stop", "--cluster", restarted)).code).toBe(0);
    expect(fs.existsSync(registry)).toBe(false);
  });
});

describe("cleanup", () => {
  /** A driver with a private cluster (an actor, a task run), SIGKILLed with its whole process group: returns its cluster's name. */
  async function killedPrivateCluster(): Promise<string> {
    const d = spawn(process.execPath, ["-r", "tsx/cjs", LEFTOVER_DRIVER], { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"], detached: true });
    const line = await firstLine(d);
    const { cluster: name } = JSON.parse(line) as { cluster: string };
    process.kill(-d.pid!, "SIGKILL");
    await waitForCondition(() => clusterProcesses(name).length === 0, 20);
    return name;
  }

  const folder = (name: string) => path.join(os.tmpdir(), "warren", `session_${name}`);

  test("lists (--dry-run) and removes what a private cluster killed with its process group left", async () => {
    const name = await killedPrivateCluster();
    const shape = `warren.${name}.shape.CPU:1`;
    expect(await brokerHas("queue", shape)).toBe(true);
    expect(await brokerHas("exchange", `warren.${name}.tasks`)).toBe(true);
    expect(fs.existsSync(folder(name))).toBe(true);

    const dry = await warren("cleanup", "--cluster", name, "--dry-run");
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(new RegExp(`would remove ${name}: 3 queue\\(s\\), 3 exchange\\(s\\)`)); // CPU:1, CPU:0 and the mailbox
    expect(dry.stdout).toContain(`queue ${shape}`);
    expect(dry.stdout).toMatch(/--dry-run: nothing removed/);
    expect(await brokerHas("queue", shape)).toBe(true);

    const r = await warren("cleanup", "--cluster", name);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain(`removed ${name}`);
    for (const q of dry.stdout.split("\n").filter((l) => l.trim().startsWith("queue ")).map((l) => l.trim().slice(6))) {
      expect(await brokerHas("queue", q)).toBe(false);
    }
    for (const ex of ["tasks", "control", "logs"]) expect(await brokerHas("exchange", `warren.${name}.${ex}`)).toBe(false);
    expect(fs.existsSync(folder(name))).toBe(false);
    expect((await warren("cleanup", "--cluster", name)).stdout).toMatch(/Nothing to clean up/);
  }, 90_000);

  test("the next init() sweeps a dead private cluster by itself, once its folder has settled", async () => {
    const name = await killedPrivateCluster();
    const old = new Date(Date.now() - 120_000);
    fs.utimesSync(folder(name), old, old); // as if it died two minutes ago
    await warrenApi.init({ numCpus: 1 });
    try {
      await waitForCondition(async () => !fs.existsSync(folder(name)) && !(await brokerHas("queue", `warren.${name}.shape.CPU:1`)), 20);
      expect(await brokerHas("exchange", `warren.${name}.control`)).toBe(false);
    } finally {
      await warrenApi.shutdown();
    }
  }, 90_000);
});

test("warren run: a TypeScript program with the tsx warren ships, its arguments and its exit code", async () => {
  const r = await warren("run", path.join(ROOT, "test", "fixtures", "run_app.ts"), "21", "--help", "x");
  expect(r.stdout).toContain("double 42 --help x");
  expect(r.code).toBe(3);
  const missing = await warren("run", path.join(ROOT, "no-such-app.ts"));
  expect(missing.code).toBe(2);
  expect(missing.stderr).toContain("no such program file");
});

test("an ES module program with top-level await and no main guard: tasks, an actor, its own error class", async () => {
  const r = await warren("run", path.join(ROOT, "test", "fixtures", "esm", "app.mts"));
  expect(r.stderr).toMatch(/^Started a local warren cluster\. View the dashboard at http:\/\/127\.0\.0\.1:\d+\n$/); // and nothing else
  expect(r.stdout.split("\n").filter(Boolean)).toEqual(["sum 3", "tally 5", "left 6", "error true 5"]);
  expect(r.code).toBe(0);
});
