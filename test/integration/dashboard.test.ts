// The head's web dashboard: its options (port 0, a port in use, bad values), its JSON routes,
// and the page itself in headless Chromium (Debian's, driven by puppeteer-core): what a person
// sees after tasks and an actor ran, updated without a reload.
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as puppeteer from "puppeteer-core";
import * as warren from "warren";
import { Cluster, waitForCondition } from "warren/testing";
import { DashKeeper, fails, late, named, says } from "../fixtures/dashboard";
import { touchThenSleep } from "../fixtures/tasks";

const CLI = path.join(__dirname, "..", "..", "dist", "src", "cli", "main.js");

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 45_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }));
  });
}

/** A server on a free port of 127.0.0.1, so that port is in use. */
async function occupy(): Promise<{ port: number; close(): void }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

async function getJson(url: string): Promise<any> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/json");
  return res.json();
}

describe("the dashboard's options", () => {
  test("init(): a bad dashboardPort, and dashboard options for a cluster joined, are OptionsErrors", async () => {
    await expect(warren.init({ dashboardPort: 70000 })).rejects.toThrow(/dashboardPort: must be an integer from 0 to 65535 \(0 picks a free port\) \(got 70000\)/);
    await expect(warren.init({ dashboardHost: "" })).rejects.toThrow(/dashboardHost: must be a non-empty string/);
    await expect(warren.init({ cluster: "someone-else", dashboardPort: 9000 })).rejects.toThrow(
      /dashboardPort: applies to a private cluster \(init\(\) without cluster\); the head of cluster "someone-else" serves its own dashboard/,
    );
    expect(warren.isInitialized()).toBe(false);
  });

  test("a port in use is an error naming it and how to choose another", async () => {
    const taken = await occupy();
    try {
      await expect(Cluster.start({ head: { numCpus: 1, dashboardPort: taken.port } })).rejects.toThrow(
        new RegExp(`the warren node failed to start: the dashboard cannot listen on 127\\.0\\.0\\.1:${taken.port}: the port is in use .*--dashboard-port N.*dashboardPort: N.*0 for a free one`),
      );
    } finally {
      taken.close();
    }
  });

  test("a driver that joins gets the head's dashboard URL, whose machine view lists every node's workers", async () => {
    const cluster = await Cluster.start({ head: { numCpus: 1 }, nodes: [{ numCpus: 1 }] });
    try {
      const joined = await warren.init({ address: cluster.address, cluster: cluster.cluster });
      expect(joined.dashboardUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      let view: any;
      await waitForCondition(async () => {
        view = await getJson(`${joined.dashboardUrl}/api/nodes`);
        return view.nodes.length === 2 && view.nodes.every((n: any) => n.workers.some((w: any) => w.state === "IDLE"));
      }, 20);
      expect(view.nodes.map((n: any) => n.node_id).sort()).toEqual([...cluster.nodeIds].sort());
      for (const n of view.nodes) expect(n.workers).toEqual(expect.arrayContaining([expect.objectContaining({ state: "IDLE", title: expect.stringMatching(/^warren::IDLE/) })]));
    } finally {
      await warren.shutdown();
      await cluster.shutdown();
    }
  });

  test("warren start --head: bad dashboard flags are usage errors; by default 8265 or the next free port serves the cluster, printed; --include-dashboard false serves none", async () => {
    const bad = await cli("start", "--head", "--dashboard-port", "70000");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid --dashboard-port: must be an integer from 0 to 65535/);
    const notHead = await cli("start", "--cluster", "x", "--dashboard-port", "0");
    expect(notHead.code).toBe(2);
    expect(notHead.stderr).toMatch(/--dashboard-port goes with --head: the head serves the cluster's dashboard/);

    const cluster = `dash-${randomBytes(4).toString("hex")}`;
    const started = await cli("start", "--head", "--num-cpus", "1", "--cluster", cluster);
    try {
      expect(started.code).toBe(0);
      const [, url, port] = /Dashboard:\s+(http:\/\/127\.0\.0\.1:(\d+))/.exec(started.stdout) ?? [];
      expect(Number(port)).toBeGreaterThanOrEqual(8265);
      expect(Number(port)).toBeLessThanOrEqual(8265 + 50);
      const view = await getJson(`${url}/api/nodes`);
      expect(view.cluster).toBe(cluster);
      expect(view.nodes).toEqual([expect.objectContaining({ is_head_node: true, state: "ALIVE" })]);
      const without = await cli("start", "--head", "--num-cpus", "1", "--cluster", `${cluster}-off`, "--include-dashboard", "false");
      expect(without.code).toBe(0);
      expect(without.stdout).not.toMatch(/Dashboard:/);
    } finally {
      expect((await cli("stop", "--cluster", cluster)).code).toBe(0);
      expect((await cli("stop", "--cluster", `${cluster}-off`)).code).toBe(0);
    }
  });
});

describe("a private cluster's dashboard", () => {
  let info: warren.ClusterInfo;
  let head: warren.NodeSummary;

  beforeAll(async () => {
    info = await warren.init({ numCpus: 2, dashboardPort: 0 });
    head = (await warren.nodes()).find((n) => n.IsHead)!;
  });
  afterAll(() => warren.shutdown());

  test("port 0 picks a free port; init() and nodes() give its URL", () => {
    expect(info.dashboardUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(info.dashboardUrl).not.toMatch(/:0$/);
    expect(head.DashboardURL).toBe(info.dashboardUrl);
  });

  test("the JSON routes: nodes with usage and workers, tasks by name with failures, actors, objects, jobs", async () => {
    const url = info.dashboardUrl!;
    expect(await warren.get(named.remote(1))).toBe(2);
    await expect(warren.get(fails.remote())).rejects.toThrow(/dash failure on purpose/);
    const keeper = DashKeeper.remote();
    expect(await warren.get(keeper.add.remote())).toBe(1);
    const big = warren.put(Buffer.alloc(300_000, 7));
    await warren.get(big);
    const marker = path.join(os.tmpdir(), `warren-dash-${process.pid}`);
    const waiting = touchThenSleep.options({ name: "dash_waiter" }).remote(marker, 3);

    // The machine view: the running task's worker, titled by it, and the actor's worker.
    let nodes: any;
    await waitForCondition(async () => {
      nodes = await getJson(`${url}/api/nodes`);
      const workers = nodes.nodes[0].workers as any[];
      return workers.some((w) => w.task_name === "dash_waiter") && workers.some((w) => w.actor_class === "DashKeeper");
    }, 20);
    const node = nodes.nodes[0];
    expect(node).toMatchObject({ node_id: head.NodeID, is_head_node: true, state: "ALIVE", resources_total: { CPU: 2 } });
    expect(node.resources_available.CPU).toBeLessThanOrEqual(1); // DashKeeper holds one of the two
    const waiter = node.workers.find((w: any) => w.task_name === "dash_waiter");
    expect(waiter).toMatchObject({ state: "BUSY", title: expect.stringMatching(/^warren::dash_waiter/), logs: `/api/logs?node=${head.NodeID}&pid=${waiter.pid}` });
    expect(node.workers.find((w: any) => w.actor_class === "DashKeeper")).toMatchObject({ state: "ACTOR", actor_id: keeper.actorId });

    const tasks = await getJson(`${url}/api/tasks`);
    expect(tasks.summary.special_dash_task).toMatchObject({ func_or_class_name: "named", type: "NORMAL_TASK", state_counts: { FINISHED: 1 } });
    expect(tasks.recent_failures).toEqual([expect.objectContaining({ name: "dash_fails", error_type: "TaskError", error_message: expect.stringContaining("dash failure on purpose") })]);
    expect(tasks.running).toEqual(expect.arrayContaining([expect.objectContaining({ name: "dash_waiter", node_id: head.NodeID })]));
    expect(tasks.running.map((t: any) => t.state)).not.toContain("FINISHED"); // finished tasks keep their worker's pid in the history

    const { actors } = await getJson(`${url}/api/actors`);
    expect(actors).toEqual(expect.arrayContaining([expect.objectContaining({ class_name: "DashKeeper", state: "ALIVE", num_restarts: 0, node_id: head.NodeID })]));

    const objects = await getJson(`${url}/api/objects`);
    const store = objects.stores.find((s: any) => s.node_id === head.NodeID);
    expect(store.bytes).toBeGreaterThanOrEqual(300_000);
    expect(store.capacity).toBe(head.Resources.object_store_memory);
    expect(objects.objects).toEqual(expect.arrayContaining([expect.objectContaining({ object_id: big.hex(), location: `node:${head.NodeID}` })]));

    const { jobs } = await getJson(`${url}/api/jobs`);
    expect(jobs).toEqual([expect.objectContaining({ job_id: info.jobId, status: "RUNNING", driver_pid: process.pid })]);

    await warren.get(waiting);
    fs.rmSync(marker, { force: true });
  });

  test("the logs route shows a worker's last lines, prefixed as the driver prints them; bad requests are told what to send", async () => {
    const url = info.dashboardUrl!;
    const pid = await warren.get(says.remote("hello from the dashboard's worker"));
    const logs = await fetch(`${url}/api/logs?node=${head.NodeID}&pid=${pid}`);
    expect(logs.status).toBe(200);
    expect(await logs.text()).toContain(`(dash_says pid=${pid}) hello from the dashboard's worker`);
    const nobody = await fetch(`${url}/api/logs?node=${head.NodeID}&pid=${process.pid}`);
    expect(nobody.status).toBe(404);
    expect(await nobody.text()).toContain(`has no log of a worker with pid ${process.pid}`);
    const bad = await fetch(`${url}/api/logs`);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/pass node=<node id> and pid=<worker pid>/);
    const missing = await fetch(`${url}/api/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toMatch(/\/api\/nodes, \/api\/tasks/);
    expect((await fetch(url, { method: "POST" })).status).toBe(405);
  });

  test("in a browser: the node, a named task and an actor's class appear, and a task run later appears without a reload", async () => {
    const chromium = ["chromium", "chromium-browser"].map((b) => { try { return execFileSync("which", [b]).toString().trim(); } catch { return ""; } }).find(Boolean);
    if (!chromium) throw new Error("no chromium on this machine: `apt-get install -y chromium` (.ci/run installs it when missing)");
    const browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: ["--no-sandbox"] });
    try {
      const page = await browser.newPage();
      await page.goto(info.dashboardUrl!);
      // What a person sees: the rendered text of a section (the test has no DOM types, so the page's code is a string).
      const text = (selector: string) => page.evaluate(`document.querySelector(${JSON.stringify(selector)}).innerText`) as Promise<string>;
      const sees = (section: string, what: string) =>
        page.waitForFunction(`document.querySelector("#${section}").innerText.includes(${JSON.stringify(what)})`, { timeout: 15_000 });
      await sees("nodes", `Node ${head.NodeID.slice(0, 12)}`);
      await sees("nodes", "head");
      await sees("nodes", "CPU:");
      await sees("tasks", "special_dash_task");
      await sees("tasks", "dash_fails");
      await sees("actors", "DashKeeper");
      await sees("jobs", "RUNNING");
      expect(await text("#status")).toMatch(/^Updated /);

      expect(await warren.get(late.remote())).toBe("late");
      await sees("tasks", "late_dash_task");
    } finally {
      await browser.close();
    }
  });
});
