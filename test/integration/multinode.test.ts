// Several nodes on this machine, each its own daemon and LMDB store, sharing only the broker.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFile } from "node:child_process";
import * as warren from "warren";
import { Cluster, waitForCondition } from "warren/testing";
import { currentRuntime } from "../../src/core/current";
import { Where, checkPattern, markThenSleep, markThenWait, pattern, sleepWhere, whereAmI } from "../fixtures/placement";

let cluster: Cluster;
let custom1: string; // the node with Custom1
let spare: string[]; // the two nodes with Spot
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "warren-multi-"));

beforeAll(async () => {
  cluster = await Cluster.start({ head: { numCpus: 1 } });
  custom1 = await cluster.addNode({ numCpus: 1, resources: { Custom1: 1 } });
  spare = [await cluster.addNode({ numCpus: 2, resources: { Spot: 2 } }), await cluster.addNode({ numCpus: 2, resources: { Spot: 2 } })];
  await warren.init({ address: cluster.address, cluster: cluster.cluster });
}, 60_000);

afterAll(async () => {
  await warren.shutdown();
  await cluster.shutdown();
  expect(fs.existsSync(cluster.sessionDir)).toBe(false);
  fs.rmSync(tmp, { recursive: true, force: true });
});

test("nodes() lists every node with Ray's fields; resources add up", async () => {
  const nodes = await warren.nodes();
  expect(nodes).toHaveLength(4);
  const head = nodes.find((n) => n.IsHead)!;
  expect(head.NodeID).toBe(cluster.headId);
  for (const n of nodes) {
    expect(n.Alive).toBe(true);
    expect(n.NodeManagerHostname).toBe(os.hostname());
    expect(n.NodeManagerAddress).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(n.ObjectStorePath).toMatch(/objects\.lmdb$/);
    expect(typeof n.MetricsExportPort).toBe("number");
    expect(n.Resources.CPU).toBeGreaterThan(0);
  }
  expect(new Set(nodes.map((n) => n.ObjectStorePath)).size).toBe(4); // a store each
  const total = await warren.clusterResources();
  expect(total.CPU).toBe(6);
  expect(total.Custom1).toBe(1);
  expect(total.Spot).toBe(4);
  await waitForCondition(async () => (await warren.availableResources()).CPU === 6);
});

test("a custom resource places the task on the node that has it", async () => {
  const where = await warren.get(Array.from({ length: 4 }, () => whereAmI.options({ resources: { Custom1: 1 } }).remote()));
  expect(new Set(where)).toEqual(new Set([custom1]));
  const ctx = warren.getRuntimeContext();
  expect(ctx.nodeId).toBe(cluster.headId); // the driver's local node
});

test("work spreads over the nodes: no feasible node stays idle while tasks wait", async () => {
  const started = Date.now();
  const where = await warren.get(Array.from({ length: 6 }, () => sleepWhere.remote(1)));
  expect(new Set(where).size).toBeGreaterThanOrEqual(3);
  expect(Date.now() - started).toBeLessThan(2900); // six 1-second tasks on six CPUs, not one node's two
});

test("availableResources leaves out what is fully used", async () => {
  const busy = whereAmI.options({ resources: { Custom1: 1 } });
  const holder = markThenSleep.options({ resources: { Custom1: 1 } }).remote(path.join(tmp, "custom-holder"), 2);
  await waitForCondition(async () => !("Custom1" in (await warren.availableResources())));
  expect((await warren.clusterResources()).Custom1).toBe(1);
  await warren.get([holder, busy.remote()]);
});

test("a 256 MiB object made on one node is read correctly on others", async () => {
  const size = 256 * 1024 * 1024;
  const big = pattern.options({ resources: { Custom1: 1 } }).remote(size);
  const [length, node] = await warren.get(checkPattern.options({ resources: { Spot: 1 } }).remote(big));
  expect(length).toBe(size);
  expect(spare).toContain(node);
  const local = (await warren.get(big)) as Uint8Array; // fetched to the driver's node
  expect(local.length).toBe(size);
  expect(local[4096 * 300]).toBe(300 % 251);
}, 120_000);

test("a node SIGKILLed mid-task: the task finishes on another node", async () => {
  const marker = path.join(tmp, "killed-mid-task");
  const ref = markThenSleep.options({ resources: { Spot: 1 } }).remote(marker, 2);
  await waitForCondition(() => fs.existsSync(marker));
  const victim = fs.readFileSync(marker, "utf8").trim();
  await cluster.removeNode(victim, { graceful: false });
  const finishedOn = await warren.get(ref, { timeout: 30 });
  expect(finishedOn).not.toBe(victim);
  expect(spare).toContain(finishedOn);
  spare = spare.filter((n) => n !== victim);
  spare.push(await cluster.addNode({ numCpus: 2, resources: { Spot: 2 } }));
  await waitForCondition(async () => (await warren.nodes()).find((n) => n.NodeID === victim)?.Alive === false);
  const dead = (await warren.nodes()).find((n) => n.NodeID === victim)!;
  expect(dead.Resources).toEqual({});
}, 60_000);

test("a task waiting in get() on a node that dies is resubmitted by its owner", async () => {
  const marker = path.join(tmp, "killed-while-waiting");
  const ref = markThenWait.options({ resources: { Spot: 1 } }).remote(marker, 2);
  await waitForCondition(() => fs.existsSync(marker));
  const victim = fs.readFileSync(marker, "utf8").trim();
  // Its node has acked it (it waits in get): only the owner can bring it back now.
  await waitForCondition(async () => (await currentRuntime().rpc.head("node.acked", { nodeId: victim })).includes(ref.taskId));
  await cluster.removeNode(victim, { graceful: false });
  expect(spare).toContain(await warren.get(ref, { timeout: 30 }));
  spare = spare.filter((n) => n !== victim);
  spare.push(await cluster.addNode({ numCpus: 2, resources: { Spot: 2 } }));
}, 60_000);

test("an object whose node died is made again by its task (lineage), on another node", async () => {
  const nodes = [await cluster.addNode({ numCpus: 1, resources: { Recon: 1 } }), await cluster.addNode({ numCpus: 1, resources: { Recon: 1 } })];
  const big = pattern.options({ resources: { Recon: 1 } }).remote(1024 * 1024);
  await warren.wait([big], { timeout: 30 });
  const holder = (currentRuntime().objects.owned.peek(big.hex()) as { node: string }).node;
  expect(nodes).toContain(holder);
  await cluster.removeNode(holder, { graceful: false });
  const value = (await warren.get(big, { timeout: 30 })) as Uint8Array;
  expect(value.length).toBe(1024 * 1024);
  expect(value[4096 * 7]).toBe(7);
  expect((currentRuntime().objects.owned.peek(big.hex()) as { node: string }).node).toBe(nodes.find((n) => n !== holder));
  expect(await currentRuntime().rpc.head("shape.infeasible", {})).not.toContain("CPU:1,Recon:1");
  await cluster.removeNode(nodes.find((n) => n !== holder)!);
}, 60_000);

test("an object held only by a node that died, whose task may not run again, is ObjectLostError", async () => {
  const holderNode = await cluster.addNode({ numCpus: 1, resources: { Holder: 1 } });
  const big = pattern.options({ resources: { Holder: 1 }, maxRetries: 0 }).remote(1024 * 1024);
  const [ready] = await warren.wait([big], { timeout: 30 });
  expect(ready).toHaveLength(1);
  await cluster.removeNode(holderNode, { graceful: false });
  const err = await warren.get(big, { timeout: 30 }).catch((e) => e);
  expect(err).toBeInstanceOf(warren.ObjectLostError);
  expect(err.message).toContain(holderNode);
}, 60_000);

test("an infeasible task waits, is reported, and runs once a node that fits joins", async () => {
  const ref = whereAmI.options({ resources: { Special: 1 } }).remote();
  const [ready] = await warren.wait([ref], { timeout: 1 });
  expect(ready).toEqual([]);
  expect(await currentRuntime().rpc.head("shape.infeasible", {})).toContain("CPU:1,Special:1");
  const special = await cluster.addNode({ numCpus: 1, resources: { Special: 1 } });
  expect(await warren.get(ref, { timeout: 20 })).toBe(special);
  expect(await currentRuntime().rpc.head("shape.infeasible", {})).not.toContain("CPU:1,Special:1");
  await cluster.removeNode(special);
}, 60_000);

test("an actor whose node dies restarts elsewhere when maxRestarts allows", async () => {
  const a = Where.options({ resources: { Spot: 1 }, maxRestarts: 1 }).remote();
  const first = await warren.get(a.node.remote());
  await cluster.removeNode(first, { graceful: false });
  spare = spare.filter((n) => n !== first);
  spare.push(await cluster.addNode({ numCpus: 2, resources: { Spot: 2 } }));
  await waitForCondition(async () => (await warren.get(a.node.remote(), { timeout: 5 }).catch(() => first)) !== first, 30);
  expect(spare).toContain(await warren.get(a.node.remote()));
}, 60_000);

test("a detached actor outlives its driver; an owned one dies with it", async () => {
  const script = path.join(__dirname, "..", "fixtures", "detached_driver.ts");
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ["-r", "tsx/cjs", script, cluster.address, cluster.cluster], (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout))));
  expect(out).toContain("created");
  const keeper = await warren.getActor<Where>("keeper", { namespace: "detached-test" });
  expect(typeof (await warren.get(keeper.node.remote()))).toBe("string");
  await waitForCondition(async () => !(await warren.getActor("temp", { namespace: "detached-test" }).then(() => true, () => false)), 15);
  await warren.kill(keeper);
}, 60_000);
