// The head's registry on real LMDB files (head/store.ts): what a head knew comes back when a new
// registry opens the same file, and heartbeats are never written.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { WarrenError } from "../../src/errors";
import { HeadRegistry } from "../../src/head/registry";
import { HEAD_DEFAULTS } from "../../src/head/server";
import { RegistryStore } from "../../src/head/store";
import type { HandleInfo } from "../../src/wire/descriptors";
import type { ActorCreationMessage, NodeInfo } from "../../src/wire/head";

let dir: string;
let file: string;
const open: RegistryStore[] = [];

function openStore(): RegistryStore {
  const store = RegistryStore.open(file);
  open.push(store);
  return store;
}

/** Closes a store (waiting for its writes), as a head does when it stops. */
async function close(store: RegistryStore): Promise<void> {
  open.splice(open.indexOf(store), 1);
  await store.close();
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "warren-head-store-"));
  file = path.join(dir, "head.lmdb");
});
afterEach(async () => {
  for (const store of open.splice(0)) await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const handle = (id: string, className = "Counter"): HandleInfo => ({
  id,
  className,
  cls: { module: "/app/actors.js", index: 0, name: className },
  methods: { incr: { numReturns: 1 } },
});

const node = (nodeId: string, isHead = false): NodeInfo => ({
  nodeId, isHead, ip: "127.0.0.1", hostname: "host", storePath: `/tmp/${nodeId}.lmdb`, metricsPort: 9100, objectManager: { host: "127.0.0.1", port: 9200 }, resources: { CPU: 2 },
});

const creation: ActorCreationMessage = {
  body: Buffer.from([1, 2, 3, 250]),
  routingKey: "CPU:1",
  headers: { maxRestarts: 2, restarts: 0 },
  messageId: "task-1",
  type: "actor.create",
};

const cause = { name: "ActorDiedError", message: "it was killed\nby a test", stack: "", fields: { actorId: "dead" } };

const register = (registry: HeadRegistry, id: string, extra: { name?: string; detached?: boolean } = {}) =>
  registry.register({ handle: handle(id), owner: "driver-1", job: "driver-1", namespace: "ns", getIfExists: false, detached: false, ...extra });

/** A registry with a named, a detached, a plain and a dead named actor; two nodes, one dead; two shapes. */
function populate(registry: HeadRegistry): void {
  register(registry, "named", { name: "counter" });
  register(registry, "detached", { name: "keeper", detached: true });
  register(registry, "plain");
  register(registry, "dead", { name: "gone" });
  registry.onEvent("named", { type: "ALIVE", nodeId: "node-a", pid: 101 }, creation);
  registry.onEvent("detached", { type: "ALIVE", nodeId: "node-b", pid: 202 });
  registry.onEvent("dead", { type: "ALIVE", nodeId: "node-b", pid: 303 });
  registry.onEvent("dead", { type: "DEAD", cause });
  registry.registerNode(node("node-a", true));
  registry.registerNode(node("node-b"));
  registry.nodeDied("node-b");
  registry.announceShape("CPU:1");
  registry.announceShape("CPU:1,GPU:1");
}

test("a registry opened on the same file gets back its actors, names, nodes and shapes", async () => {
  const first = openStore();
  const before = new HeadRegistry(first, HEAD_DEFAULTS.deadActorsKept);
  populate(before);
  const rowsBefore = before.actorRows();
  await close(first);

  const loadedAt = Date.now();
  const after = new HeadRegistry(openStore(), HEAD_DEFAULTS.deadActorsKept);

  const byId = (rows: ReturnType<HeadRegistry["actorRows"]>) => [...rows].sort((a, b) => a.actor_id.localeCompare(b.actor_id));
  expect(byId(after.actorRows())).toEqual(byId(rowsBefore));
  expect(after.state("named")).toBe("ALIVE");
  expect(after.state("plain")).toBe("PENDING_CREATION");
  expect(after.info("dead")).toEqual({ state: "DEAD", cause, className: "Counter" });
  expect(after.list().find((a) => a.handle.id === "named")?.creation).toEqual(creation);
  expect(after.list().find((a) => a.handle.id === "detached")?.detached).toBe(true);

  expect(after.getNamed("counter", "ns")).toEqual(handle("named"));
  expect(after.getNamed("keeper", "ns")).toEqual(handle("detached"));
  expect(after.getNamed("gone", "ns")).toBeNull();
  expect(() => register(after, "other", { name: "counter" })).toThrow(WarrenError);
  expect(() => register(after, "other", { name: "counter" })).toThrow('the actor name "counter" is already taken in namespace "ns"');
  expect(register(after, "again", { name: "gone" })).toEqual({ created: true, handle: handle("again") });

  expect(after.listNodes().map((n) => [n.NodeID, n.Alive, n.IsHead])).toEqual([["node-a", true, true], ["node-b", false, false]]);
  expect(after.nodeState("node-b")).toBe("DEAD");
  // Not yet heard from: the head's silence check starts counting from the load.
  expect(after.aliveNodes().map((n) => n.lastSeen >= loadedAt)).toEqual([true]);
  expect(after.totals(false)).toEqual({ CPU: 2 });
  expect([...after.shapes.keys()].sort()).toEqual(["CPU:1", "CPU:1,GPU:1"]);
});

test("a restored lifecycle goes on where it stopped, and its later events are saved too", async () => {
  const first = openStore();
  populate(new HeadRegistry(first, HEAD_DEFAULTS.deadActorsKept));
  await close(first);

  const second = openStore();
  const restored = new HeadRegistry(second, HEAD_DEFAULTS.deadActorsKept);
  restored.onEvent("named", { type: "RESTARTING" });
  restored.onEvent("named", { type: "ALIVE", nodeId: "node-c", pid: 404 });
  expect(restored.nodeDied("node-b")).toBeUndefined(); // dead already: not lost twice
  expect(restored.nodeDied("node-a")).toEqual([]);
  await close(second);

  const third = new HeadRegistry(openStore(), HEAD_DEFAULTS.deadActorsKept);
  const row = third.actorRows().find((r) => r.actor_id === "named");
  expect(row).toMatchObject({ state: "ALIVE", node_id: "node-c", pid: 404, num_restarts: 1 });
  expect(third.aliveNodes()).toEqual([]);
});

test("heartbeats and running tasks are not written", async () => {
  const store = openStore();
  const registry = new HeadRegistry(store, HEAD_DEFAULTS.deadActorsKept);
  registry.registerNode(node("node-a"));
  const puts = [jest.spyOn(store, "putNode"), jest.spyOn(store, "putActor"), jest.spyOn(store, "putShape")];
  for (let i = 0; i < 5; i++) {
    registry.heartbeat("node-a", { CPU: i }, [`task-${i}`]);
    registry.handlers["node.running"]({ nodeId: "node-a", task: `task-run-${i}` });
  }
  expect(puts.map((p) => p.mock.calls.length)).toEqual([0, 0, 0]);
  expect(registry.aliveNodes()[0].available).toEqual({ CPU: 4 }); // the heartbeats did land in memory
  await close(store);

  const reloaded = new HeadRegistry(openStore(), HEAD_DEFAULTS.deadActorsKept);
  expect(reloaded.aliveNodes().map((n) => [n.available, [...n.acked]])).toEqual([[{ CPU: 2 }, []]]);
});

test("the cluster's settings are kept, and a heartbeat says whether its node is known", async () => {
  const store = openStore();
  expect(store.cluster()).toBeUndefined();
  store.putCluster({ durable: true });
  const registry = new HeadRegistry(store, HEAD_DEFAULTS.deadActorsKept);
  registry.registerNode(node("node-a"));
  expect(registry.heartbeat("node-a", { CPU: 1 }, []).known).toBe(true);
  expect(registry.heartbeat("node-b", { CPU: 1 }, []).known).toBe(false);
  await close(store);

  const reopened = openStore();
  expect(reopened.cluster()).toEqual({ durable: true });
  await close(reopened);
  RegistryStore.remove(file);
  expect(fs.readdirSync(dir)).toEqual([]);
  expect(openStore().cluster()).toBeUndefined(); // a new cluster's registry
});

test("past deadKept dead actors, the oldest dead is dropped from the registry and its file; live ones stay", async () => {
  const store = openStore();
  const registry = new HeadRegistry(store, 2);
  register(registry, "live");
  registry.onEvent("live", { type: "ALIVE", nodeId: "node-a", pid: 100 });
  for (const id of ["d1", "d2", "d3"]) {
    register(registry, id, { name: id });
    registry.onEvent(id, { type: "DEAD", cause });
  }
  expect(registry.list().map((a) => a.handle.id).sort()).toEqual(["d2", "d3", "live"]);
  expect(registry.info("d1")).toBeNull();
  await close(store);
  const reloaded = new HeadRegistry(openStore(), 2);
  expect(reloaded.list().map((a) => a.handle.id).sort()).toEqual(["d2", "d3", "live"]);
});

test("a dead actor is kept as its last state alone: its row, cause and end are there, its creation is not, before and after a reload", async () => {
  const store = openStore();
  const registry = new HeadRegistry(store, HEAD_DEFAULTS.deadActorsKept);
  register(registry, "short");
  registry.onEvent("short", { type: "ALIVE", nodeId: "node-a", pid: 7 }, creation);
  registry.onEvent("short", { type: "DEAD", cause });
  registry.onEvent("short", { type: "ALIVE", nodeId: "node-b", pid: 8 }); // DEAD is final
  const row = registry.actorRows().find((r) => r.actor_id === "short");
  expect(row).toMatchObject({ state: "DEAD", node_id: "node-a", pid: 7, death_cause: "it was killed" });
  expect(registry.list().find((a) => a.handle.id === "short")?.creation).toBeUndefined();
  await registry.incarnationOver("short", false); // resolves: that incarnation is over
  await close(store);
  const reloaded = new HeadRegistry(openStore(), HEAD_DEFAULTS.deadActorsKept);
  expect(reloaded.info("short")).toEqual({ state: "DEAD", cause, className: "Counter" });
  expect(reloaded.actorRows().find((r) => r.actor_id === "short")).toEqual(row);
  await reloaded.incarnationOver("short", true);
});
