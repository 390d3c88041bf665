// Logs: each worker's own file under its node's session folder, `warren logs` (the built CLI) over
// the broker, rotation, a dead worker's last lines, and a private cluster's session_latest.
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { execFile, spawn } from "node:child_process";
import * as warren from "warren";
import { Cluster, waitForCondition } from "warren/testing";
import * as l from "../fixtures/logging";
import { LATEST_SESSION, clusterDir } from "../../src/core/paths";

const CLI = path.join(__dirname, "..", "..", "dist", "src", "cli", "main.js");

interface Run { code: number; stdout: string; stderr: string }

function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 45_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }));
  });
}

const unique = (what: string) => `${what}-${randomBytes(4).toString("hex")}`;

/** What the driver prints to stdout from now on (worker output forwarded to it included). */
function watchStdout(): { text(): string; stop(): void } {
  const chunks: string[] = [];
  const spy = jest.spyOn(process.stdout, "write").mockImplementation((c: unknown) => {
    chunks.push(String(c));
    return true;
  });
  return { text: () => chunks.join(""), stop: () => spy.mockRestore() };
}

describe("a private cluster's logs", () => {
  let info: warren.ClusterInfo;
  let dir: string;
  let out: ReturnType<typeof watchStdout>;

  beforeAll(async () => {
    info = await warren.init({ numCpus: 2 });
    dir = clusterDir(info.cluster);
  });

  beforeEach(() => (out = watchStdout()));
  afterEach(() => out.stop());

  afterAll(() => warren.shutdown());

  test("a task's line is in its worker's own file, and `warren logs` shows it with its prefix for its node and task", async () => {
    const line = unique("hello");
    const { pid, taskId } = await warren.get(l.say.remote(line));
    await waitForCondition(() => out.text().includes(`(say pid=${pid}) ${line}\n`), 10); // forwarded to the driver as before
    const files = fs.readdirSync(path.join(dir, "logs")).filter((f) => f.endsWith(`-${pid}.out`));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^worker-[0-9a-f]{16}-\d+\.out$/);
    expect(fs.readFileSync(path.join(dir, "logs", files[0]), "utf8")).toContain(`${line}\n`);

    const byTask = await cli("logs", "--cluster", info.cluster, "--task", taskId!);
    expect(byTask.code).toBe(0);
    expect(byTask.stdout).toBe(`(say pid=${pid}) ${line}\n`);
    const byNode = await cli("logs", "--cluster", info.cluster, "--node", info.nodeId.slice(0, 10), "--tail", "5");
    expect(byNode.stdout).toContain(`(say pid=${pid}) ${line}\n`);
    expect(byNode.stdout).toMatch(/\(node pid=\d+\) node [0-9a-f]+ of cluster .* started/); // the node's own log, no longer empty
    expect(byNode.stdout).not.toContain(":warren:"); // markers are read, not printed
    const otherTask = await cli("logs", "--cluster", info.cluster, "--task", "0".repeat(32));
    expect(otherTask.stdout).toBe("");
    expect(otherTask.stderr).toContain(`no output of task ${"0".repeat(32)}`);
  });

  test("`warren logs --actor` shows that actor's lines only", async () => {
    const talker = l.Talker.remote();
    const line = unique("actor-line");
    const pid = await warren.get(talker.say.remote(line));
    await warren.get(l.say.remote(unique("not-the-actor")));
    const r = await cli("logs", "--cluster", info.cluster, "--actor", talker.actorId);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`(Talker pid=${pid}) ${line}\n`);
    await warren.kill(talker);
  });

  test("`warren logs --actor` of a shared actor shows its lines, not those of the actors beside it in its host", async () => {
    const Shared = l.Talker.options({ process: "shared" });
    const [talker, neighbour] = [Shared.remote(), Shared.remote()];
    const line = unique("shared-line");
    const pid = await warren.get(talker.say.remote(line));
    expect(await warren.get(neighbour.say.remote(unique("neighbour")))).toBe(pid);
    const r = await cli("logs", "--cluster", info.cluster, "--actor", talker.actorId);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`(Talker pid=${pid}) ${line}\n`);
    await Promise.all([talker, neighbour].map((a) => warren.kill(a)));
  });

  test("`warren logs --follow` prints lines printed after it started", async () => {
    const follower = spawn(process.execPath, [CLI, "logs", "--cluster", info.cluster, "--tail", "1", "--follow"]);
    let seen = "";
    follower.stdout.on("data", (c) => (seen += c));
    try {
      await waitForCondition(() => seen.includes("(node pid="), 15); // the first answer came
      const line = unique("followed");
      const { pid } = await warren.get(l.say.remote(line));
      await waitForCondition(() => seen.includes(`(say pid=${pid}) ${line}\n`), 10);
    } finally {
      follower.kill();
    }
  });

  test("bad input is a clear usage error", async () => {
    const bad = [
      [["--tail", "0"], /--tail.*must be an integer >= 1/],
      [["--task", "abc"], /--task takes a task id, 32 hex digits/],
      [["--node", "xyz"], /--node.*must be a node id/],
    ] as const;
    for (const [args, message] of bad) {
      const r = await cli("logs", "--cluster", info.cluster, ...args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const noNode = await cli("logs", "--cluster", info.cluster, "--node", "ffffffffffff");
    expect(noNode.code).toBe(1);
    expect(noNode.stderr).toContain(`has no live node ffffffffffff; its live nodes: ${info.nodeId}`);
    const noActor = await cli("logs", "--cluster", info.cluster, "--actor", "f".repeat(32));
    expect(noActor.stderr).toContain(`has no actor ${"f".repeat(32)}`);
    expect((await cli("logs", "--help")).stdout).toContain("--follow");
  });

  test.each(["exit", "kill"] as const)("a worker that prints, then dies (%s): its last line is in WorkerCrashedError and reaches the driver", async (how) => {
    const line = unique(`last-words-${how}`);
    const err = await warren.get(l.sayAndDie.options({ maxRetries: 0 }).remote(line, how)).catch((e) => e);
    expect(err).toBeInstanceOf(warren.WorkerCrashedError);
    expect(err.message).toContain(how === "exit" ? "exit code 3" : "SIGKILL");
    expect(err.message).toMatch(new RegExp(`Its last output:\\n(.*\\n)*  ${line}`));
    expect(err.message).toContain(`kept after shutdown as ${LATEST_SESSION}`);
    await waitForCondition(() => new RegExp(`\\(sayAndDie pid=\\d+\\) ${line}\\n`).test(out.text()), 10);
  });

  test("an actor whose worker prints, then exits: its last line is in the ActorDiedError", async () => {
    const talker = l.Talker.remote();
    const line = unique("actor-last-words");
    const err = await warren.get(talker.sayAndExit.remote(line)).catch((e) => e);
    expect(err).toBeInstanceOf(warren.ActorDiedError);
    expect(err.message).toMatch(new RegExp(`exited \\(exit code 5\\).*Its last output:\\n(.*\\n)*  ${line}`, "s"));
    await waitForCondition(() => out.text().includes(`) ${line}\n`), 10);
  });

  test("a dead worker's line that reached the driver already is not printed again", async () => {
    const line = unique("said-once");
    const marker = unique("after");
    await warren.get(l.sayWaitAndExit.options({ maxRetries: 0 }).remote(line)).catch((e) => e);
    await warren.get(l.say.remote(marker)); // the crash's lines were sent before this task's
    await waitForCondition(() => out.text().includes(marker), 10);
    expect(out.text().split(line).length - 1).toBe(1);
  });

  test("after shutdown, session_latest holds the session's logs (and not its object store)", async () => {
    const line = unique("kept");
    const { pid } = await warren.get(l.say.remote(line));
    out.stop();
    await warren.shutdown();
    expect(fs.readlinkSync(LATEST_SESSION)).toBe(path.basename(dir));
    const logs = path.join(LATEST_SESSION, "logs");
    const file = fs.readdirSync(logs).find((f) => f.endsWith(`-${pid}.out`))!;
    expect(fs.readFileSync(path.join(logs, file), "utf8")).toContain(line);
    expect(fs.readFileSync(path.join(LATEST_SESSION, "node.log"), "utf8")).toMatch(new RegExp(`worker [0-9a-f]+ pid=${pid} started; its output: .*-${pid}\\.out`));
    expect(fs.existsSync(path.join(LATEST_SESSION, "objects.lmdb"))).toBe(false);
  });
});

describe("rotation", () => {
  const env = { WARREN_LOG_MAX_BYTES: process.env.WARREN_LOG_MAX_BYTES, WARREN_LOG_BACKUPS: process.env.WARREN_LOG_BACKUPS };
  afterEach(async () => {
    await warren.shutdown();
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  test("a worker's file stays under the limit, with the backups asked for, and `warren logs` still reads its last lines", async () => {
    process.env.WARREN_LOG_MAX_BYTES = "4096";
    process.env.WARREN_LOG_BACKUPS = "2";
    const info = await warren.init({ numCpus: 1, logToDriver: false });
    const pid = await warren.get(l.spam.remote(300, 100)); // about 32 KiB
    const logs = path.join(clusterDir(info.cluster), "logs");
    const file = path.join(logs, fs.readdirSync(logs).find((f) => f.endsWith(`-${pid}.out`))!);
    for (const f of [file, `${file}.1`, `${file}.2`]) expect(fs.statSync(f).size).toBeLessThanOrEqual(4096 + 200);
    expect(fs.existsSync(`${file}.3`)).toBe(false);
    const r = await cli("logs", "--cluster", info.cluster, "--tail", "2");
    expect(r.stdout).toMatch(new RegExp(`\\(spam pid=${pid}\\) 000298 x+\\n\\(spam pid=${pid}\\) 000299 x+\\n`));
  });

  test("a bad limit is a clear error at init()", async () => {
    process.env.WARREN_LOG_MAX_BYTES = "16MiB";
    await expect(warren.init({ numCpus: 1 })).rejects.toThrow(/WARREN_LOG_MAX_BYTES must be a whole number of at least 1024 \(got "16MiB"\)/);
  });
});

describe("several nodes", () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await Cluster.start({ head: { numCpus: 1 }, nodes: [{ numCpus: 1, resources: { Side: 1 } }] });
    await warren.init({ address: c.address, cluster: c.cluster, logToDriver: false });
  });
  afterAll(async () => {
    await warren.shutdown();
    await c.shutdown();
  });

  test("`warren logs --node` shows the lines of the node the task ran on, and of no other", async () => {
    const [head, side] = c.nodeIds;
    const line = unique("on-the-side");
    const { pid, taskId } = await warren.get(l.say.options({ resources: { Side: 1 } }).remote(line));
    const onSide = await cli("logs", "--cluster", c.cluster, "--node", side);
    expect(onSide.stdout).toContain(`(say pid=${pid}) ${line}\n`);
    expect(onSide.stdout).toContain(`==> node ${side.slice(0, 12)} node.log <==`);
    expect((await cli("logs", "--cluster", c.cluster, "--node", head)).stdout).not.toContain(line);
    const everywhere = await cli("logs", "--cluster", c.cluster, "--task", taskId!);
    expect(everywhere.stdout).toBe(`(say pid=${pid}) ${line}\n`);
  });
});
