// Objects crossing nodes (issue 16): streamed from the holder's object port into the reader's
// store, the broker only saying where the port is; through broker chunks when that path fails.
import * as fs from "node:fs";
import * as path from "node:path";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import * as warren from "warren";
import { Cluster, waitForCondition } from "warren/testing";
import { currentRuntime } from "../../src/core/current";
import { freePort, httpGet, sample } from "../helpers";
import { isSeeded, makeSeeded, seeded } from "../fixtures/placement";

const MiB = 1024 * 1024;
/** Bytes sent for Buffers of `sizes`: their bytes and the 8 of their encoding each. */
const stored = (...sizes: number[]) => sizes.reduce((a, n) => a + n + 8, 0);
v8.setFlagsFromString("--expose-gc");
const gc: () => void = vm.runInNewContext("gc");
let cluster: Cluster;
let far: string; // the node with Far, where the objects are made
let nodes: warren.NodeSummary[];

beforeAll(async () => {
  cluster = await Cluster.start({ head: { numCpus: 1, resources: { Near: 1 } } });
  far = await cluster.addNode({ numCpus: 1, resources: { Far: 1 } });
  await warren.init({ address: cluster.address, cluster: cluster.cluster });
  nodes = await warren.nodes();
}, 60_000);

afterAll(async () => {
  await warren.shutdown();
  await cluster.shutdown();
});

/** What the node with Far has sent so far, by path (its Prometheus counter). */
async function sent(): Promise<{ direct: number; broker: number }> {
  const { body } = await httpGet(nodes.find((n) => n.NodeID === far)!.MetricsExportPort, "/metrics");
  const bytes = (p: string) => sample(body, "warren_object_sent_bytes_total", { path: p }) ?? 0;
  return { direct: bytes("direct"), broker: bytes("broker") };
}

const headStore = () => nodes.find((n) => n.IsHead)!.ObjectStorePath;
const largeFile = (store: string, ref: warren.ObjectRef<unknown>) => path.join(`${store}.large`, ref.hex());

test("every node advertises its own object port in nodes()", () => {
  const ports = nodes.map((n) => n.ObjectManagerPort);
  for (const p of ports) expect(p).toBeGreaterThan(0);
  expect(new Set(ports).size).toBe(nodes.length);
});

test("a large object crosses nodes through the object port, not the broker, into the reader's store", async () => {
  const before = await sent();
  const big = makeSeeded.options({ resources: { Far: 1 } }).remote(24 * MiB, 1);
  const small = makeSeeded.options({ resources: { Far: 1 } }).remote(MiB, 2); // kept in the map, not a file
  const [b, s] = await warren.get([big, small]);
  expect(b.equals(seeded(24 * MiB, 1))).toBe(true);
  expect(s.equals(seeded(MiB, 2))).toBe(true);
  const after = await sent();
  expect(after.direct - before.direct).toBe(stored(24 * MiB, MiB));
  expect(after.broker).toBe(before.broker); // not one chunk through the broker
  // The copy for the head node's processes, committed after the get returned.
  await waitForCondition(() => fs.statSync(largeFile(headStore(), big), { throwIfNoEntry: false })?.size === stored(24 * MiB));
  // A task on the head node reads it from there: no second transfer.
  expect(await warren.get(isSeeded.options({ numCpus: 0, resources: { Near: 1 } }).remote(big, 1))).toEqual([true, cluster.headId]);
  expect((await sent()).direct).toBe(after.direct);
});

test("a task on another node than the object's reads it through the object port", async () => {
  const before = await sent();
  const big = makeSeeded.options({ resources: { Far: 1 } }).remote(16 * MiB, 3);
  expect(await warren.get(isSeeded.options({ numCpus: 0, resources: { Near: 1 } }).remote(big, 3))).toEqual([true, cluster.headId]);
  expect((await sent()).direct - before.direct).toBe(stored(16 * MiB));
});

test("freeing the ref frees the object on its node and the copy the reader's node took", async () => {
  const farStore = nodes.find((n) => n.NodeID === far)!.ObjectStorePath;
  let ref: warren.ObjectRef<Buffer> | undefined = makeSeeded.options({ resources: { Far: 1 } }).remote(12 * MiB, 4);
  expect((await warren.get(ref)).length).toBe(12 * MiB);
  const files = [largeFile(farStore, ref), largeFile(headStore(), ref)];
  await waitForCondition(() => files.every((f) => fs.existsSync(f)));
  ref = undefined;
  await waitForCondition(() => {
    gc(); // the ref is unreachable: its finalizer frees the object
    return files.every((f) => !fs.existsSync(f));
  }, 20);
});

test("with the object port refused, the object still comes, in chunks through the broker", async () => {
  const before = await sent();
  currentRuntime().objects.transfer.endpoints.set(far, Promise.resolve({ host: "127.0.0.1", port: await freePort() }));
  const big = makeSeeded.options({ resources: { Far: 1 } }).remote(20 * MiB, 5);
  expect((await warren.get(big)).equals(seeded(20 * MiB, 5))).toBe(true);
  const after = await sent();
  expect(after.broker - before.broker).toBe(stored(20 * MiB));
  expect(after.direct).toBe(before.direct);
  // The next object asks the node for its port again and goes direct.
  const next = makeSeeded.options({ resources: { Far: 1 } }).remote(10 * MiB, 6);
  expect((await warren.get(next)).equals(seeded(10 * MiB, 6))).toBe(true);
  expect((await sent()).direct - after.direct).toBe(stored(10 * MiB));
});
