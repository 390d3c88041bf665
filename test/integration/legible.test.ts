// What an operator reads: the broker's management UI (connection and mailbox names, through its
// HTTP API) and each node's Prometheus metrics. On a broker of this file's own (port 5793, its
// management API on 15793): the suite's broker on 5672 runs without the management plugin, and
// the last test restarts the broker.
import * as fs from "node:fs";
import * as warren from "warren";
import { Cluster, waitForCondition } from "warren/testing";
import { attach } from "../../src/api/cluster";
import { currentRuntime } from "../../src/core/current";
import { SpareBroker } from "../spare-broker";
import { httpGet, sample } from "../helpers";
import { Tally, fails, where } from "../fixtures/legible";

const broker = new SpareBroker(5793);
const MANAGEMENT = "http://127.0.0.1:15793/api";
const FORMAT = /^warren \S+ (driver|worker|node|head|cli|sync-rpc|lock|probe|sweep) \S+ node=\S+ pid=\d+$/;
let cluster: Cluster;
let c: string;

/** A GET on the broker's management API: the parsed body, or undefined on a 404. */
async function management<T>(what: string): Promise<T | undefined> {
  const r = await fetch(`${MANAGEMENT}${what}`, { headers: { authorization: `Basic ${Buffer.from("guest:guest").toString("base64")}` } });
  if (r.status === 404) return undefined;
  if (!r.ok) throw new Error(`GET ${what} on the management API: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

type Connection = { name: string; client_properties: { connection_name?: string } };

/** The names of this cluster's open connections, as the management UI lists them. */
async function connectionNames(): Promise<string[]> {
  const rows = (await management<Connection[]>("/connections")) ?? [];
  return rows.map((r) => r.client_properties.connection_name ?? "").filter((n) => n.startsWith(`warren ${c} `));
}

async function waitForNames(names: string[]): Promise<void> {
  await waitForCondition(async () => {
    const open = await connectionNames();
    return names.every((n) => open.includes(n));
  }, 30).catch(async () => {
    throw new Error(`expected connections ${JSON.stringify(names)}; open: ${JSON.stringify(await connectionNames())}`);
  });
}

beforeAll(async () => {
  await broker.start();
  cluster = await Cluster.start({ address: broker.address, head: { numCpus: 1 }, nodes: [{ numCpus: 1 }] });
  c = cluster.cluster;
}, 180_000);

afterAll(async () => {
  await warren.shutdown();
  await cluster?.shutdown();
  broker.remove();
});

test("every connection reads `warren <cluster> <role> <id> node=<nodeId> pid=<pid>`", async () => {
  const [head, node] = cluster.nodeIds;
  await attach({ address: broker.address, cluster: c }); // what `warren status` and `warren list` do
  await waitForNames([`warren ${c} cli ${currentRuntime().config.ownerId} node=- pid=${process.pid}`]);
  await warren.shutdown();

  const { jobId } = await warren.init({ address: broker.address, cluster: c });
  const task = await warren.get(where.remote());
  // A named actor is registered by a synchronous request, on the driver's sync-rpc thread's connection.
  const actor = await warren.get(Tally.options({ name: "legible" }).remote().where.remote());
  await waitForNames([
    `warren ${c} driver ${jobId} node=- pid=${process.pid}`, // a driver that joins learns its node after connecting
    `warren ${c} sync-rpc ${jobId} node=${head} pid=${process.pid}`,
    `warren ${c} worker ${task.workerId} node=${task.nodeId} pid=${task.pid}`,
    `warren ${c} worker ${actor.workerId} node=${actor.nodeId} pid=${actor.pid}`,
  ]);
  const names = await connectionNames();
  // The head's and the other node's: each pid is that node's daemon (its title, and its id in its environment).
  for (const [role, id, title] of [["head", head, "warren::node(head)"], ["node", node, "warren::node"]]) {
    const name = names.find((n) => n.startsWith(`warren ${c} ${role} ${id} node=${id} pid=`));
    expect(name).toBeDefined();
    const pid = /pid=(\d+)$/.exec(name!)![1];
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/[\0\s]+$/, "")).toBe(title);
    expect(fs.readFileSync(`/proc/${pid}/environ`, "utf8")).toContain(id);
  }
  for (const n of names) expect(n).toMatch(FORMAT);
});

test("an actor's mailbox is named by its class; its consumer is the actor's worker; it goes with the actor", async () => {
  const handle = Tally.remote();
  const me = await warren.get(handle.where.remote());
  const queue = encodeURIComponent(`warren.${c}.mailbox.Tally.${me.actorId}`);
  type Queue = { consumer_details: { channel_details: { connection_name: string } }[] };
  // The management API's consumer details lag by its statistics interval (5 s).
  await waitForCondition(async () => (await management<Queue>(`/queues/%2F/${queue}`))?.consumer_details.length === 1, 30);
  const q = (await management<Queue>(`/queues/%2F/${queue}`))!;
  // A channel names its connection by address; the connection's page shows the name it gave.
  const conn = (await management<Connection>(`/connections/${encodeURIComponent(q.consumer_details[0].channel_details.connection_name)}`))!;
  expect(conn.client_properties.connection_name).toBe(`warren ${c} worker ${me.workerId} node=${me.nodeId} pid=${me.pid}`);
  expect(await warren.get(handle.add.remote())).toBe(1);
  await warren.kill(handle);
  // The node that buries it finds its mailbox by the same name.
  await waitForCondition(async () => (await management<Queue>(`/queues/%2F/${queue}`)) === undefined, 30);
});

/** Every node's metrics, scraped now. */
async function scrape(): Promise<string[]> {
  const nodes = (await warren.nodes()).filter((n) => n.Alive);
  return Promise.all(nodes.map(async (n) => (await httpGet(n.MetricsExportPort, "/metrics")).body));
}

/** A series summed over the nodes (0 where none has it). */
function total(bodies: string[], name: string, labels: Record<string, string> = {}): number {
  return bodies.reduce((sum, b) => sum + (sample(b, name, labels) ?? 0), 0);
}

test("each node's metrics: tasks by name and state, actors by class and state, its store, its workers", async () => {
  const before = await scrape();
  const stored = { objects: total(before, "warren_object_store_objects"), bytes: total(before, "warren_object_store_bytes") };
  const ok = where.options({ name: "legible_ok" });
  await warren.get(Array.from({ length: 5 }, () => ok.remote()));
  for (let i = 0; i < 2; i++) await expect(warren.get(fails.options({ name: "legible_fail" }).remote())).rejects.toThrow(/meant to fail/);
  const big = warren.put(Buffer.alloc(300_000, 1)); // past the inline limit: into the node's LMDB store
  await waitForCondition(async () => {
    const m = await scrape();
    return total(m, "warren_tasks", { name: "legible_ok", state: "FINISHED" }) === 5 && total(m, "warren_tasks", { name: "legible_fail", state: "FAILED" }) === 2;
  }, 20);
  const m = await scrape();
  expect(total(m, "warren_tasks", { name: "legible_ok", state: "FAILED" })).toBe(0);
  expect(total(m, "warren_tasks", { name: "legible_ok", state: "RUNNING" })).toBe(0);
  // Actor calls count as tasks, as in Ray (a killed worker's last second of counts goes with it).
  expect(total(m, "warren_tasks", { name: "Tally.where", state: "FINISHED" })).toBeGreaterThanOrEqual(1);
  // The named actor of the first test lives; the second test's was buried.
  expect(total(m, "warren_actors", { class: "Tally", state: "ALIVE" })).toBe(1);
  expect(total(m, "warren_actors", { class: "Tally", state: "DEAD" })).toBe(1);
  expect(total(m, "warren_object_store_objects")).toBeGreaterThanOrEqual(stored.objects + 1);
  expect(total(m, "warren_object_store_bytes")).toBeGreaterThanOrEqual(stored.bytes + 300_000);
  for (const body of m) {
    const workers = sample(body, "warren_node_workers", {})!;
    expect(workers).toBeGreaterThanOrEqual(1);
    expect(sample(body, "warren_node_workers_idle", {})).toBeLessThanOrEqual(workers);
    expect(sample(body, "warren_broker_reconnects_total", {})).toBe(0);
  }
  await warren.get(big);
});

test("a broker restart counts one reconnection on each node", async () => {
  await broker.stop();
  await broker.start();
  await waitForCondition(async () => (await scrape()).every((b) => sample(b, "warren_broker_reconnects_total", {}) === 1), 60);
  expect(await warren.get(where.options({ name: "legible_after" }).remote(), { timeout: 30 })).toMatchObject({ pid: expect.any(Number) });
}, 120_000);
