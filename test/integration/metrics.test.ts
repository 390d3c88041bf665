// A node's Prometheus endpoint, started with a fake source and scraped over HTTP.
import { serveMetrics, MetricsServer, MetricsSource } from "../../src/node/metrics";
import { httpGet as get, sample } from "../helpers";

const state = {
  total: { CPU: 4, GPU: 1, memory: 8 * 2 ** 30, Custom1: 2, "node:10.0.0.1": 1 } as Record<string, number>,
  available: { CPU: 1.5, GPU: 1, memory: 8 * 2 ** 30, Custom1: 2, "node:10.0.0.1": 1 } as Record<string, number>,
  workers: 3,
  running: 2,
  reconnects: 0,
};
const source: MetricsSource = {
  nodeId: "n1",
  resources: () => ({ total: state.total, available: state.available }),
  workers: () => state.workers,
  idleWorkers: () => 1,
  tasksRunning: () => state.running,
  tasks: () => [{ name: "add", running: 1, finished: 7, failed: 2 }],
  actors: () => [{ className: "Counter", state: "ALIVE", count: 2 }, { className: "Counter", state: "DEAD", count: 1 }],
  store: () => ({ objects: 4, bytes: 12288 }),
  reconnects: () => state.reconnects,
  objectBytesSent: () => ({ direct: 3 * 2 ** 28, broker: 0 }),
};

let server: MetricsServer;
let other: MetricsServer | undefined;

beforeAll(async () => {
  server = await serveMetrics(source);
});

afterAll(async () => {
  await server.close();
  await other?.close();
});

test("serves GET /metrics on an ephemeral port of 127.0.0.1 in Prometheus text format", async () => {
  expect(server.port).toBeGreaterThan(0);
  const r = await get(server.port, "/metrics");
  expect(r.status).toBe(200);
  expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
  expect(r.body).toContain("# TYPE warren_node_resources_total gauge");
  expect(r.body).toContain("# HELP warren_node_workers ");
});

test("the node's gauges read the source, every series labelled with node_id", async () => {
  const { body } = await get(server.port, "/metrics");
  expect(sample(body, "warren_node_resources_total", { node_id: "n1", resource: "CPU" })).toBe(4);
  expect(sample(body, "warren_node_resources_total", { node_id: "n1", resource: "memory" })).toBe(8 * 2 ** 30);
  expect(sample(body, "warren_node_resources_total", { node_id: "n1", resource: "node:10.0.0.1" })).toBe(1);
  expect(sample(body, "warren_node_resources_available", { node_id: "n1", resource: "CPU" })).toBe(1.5);
  expect(sample(body, "warren_node_resources_available", { node_id: "n1", resource: "Custom1" })).toBe(2);
  expect(sample(body, "warren_node_workers", { node_id: "n1" })).toBe(3);
  expect(sample(body, "warren_node_tasks_running", { node_id: "n1" })).toBe(2);
  expect(sample(body, "warren_node_workers_idle", { node_id: "n1" })).toBe(1);
  expect(sample(body, "warren_tasks", { name: "add", state: "RUNNING" })).toBe(1);
  expect(sample(body, "warren_tasks", { name: "add", state: "FINISHED" })).toBe(7);
  expect(sample(body, "warren_tasks", { name: "add", state: "FAILED" })).toBe(2);
  expect(sample(body, "warren_actors", { class: "Counter", state: "ALIVE" })).toBe(2);
  expect(sample(body, "warren_actors", { class: "Counter", state: "DEAD" })).toBe(1);
  expect(sample(body, "warren_object_store_objects", {})).toBe(4);
  expect(sample(body, "warren_object_store_bytes", {})).toBe(12288);
  expect(body).toContain("# TYPE warren_broker_reconnects_total counter");
  expect(sample(body, "warren_broker_reconnects_total", {})).toBe(0);
  expect(sample(body, "warren_object_sent_bytes_total", { node_id: "n1", path: "direct" })).toBe(3 * 2 ** 28);
  expect(sample(body, "warren_object_sent_bytes_total", { node_id: "n1", path: "broker" })).toBe(0);
  // prom-client's default process metrics, with the same label
  expect(sample(body, "process_cpu_user_seconds_total", { node_id: "n1" })).toBeGreaterThanOrEqual(0);
  expect(sample(body, "nodejs_heap_size_used_bytes", { node_id: "n1" })).toBeGreaterThan(0);
  for (const line of body.split("\n").filter((l) => l && !l.startsWith("#"))) expect(line).toContain('node_id="n1"');
});

test("a scrape sees the values of that moment; a resource that went away is no longer reported", async () => {
  state.available = { CPU: 0, memory: 8 * 2 ** 30 };
  state.workers = 5;
  state.running = 4;
  state.reconnects = 3;
  const { body } = await get(server.port, "/metrics");
  expect(sample(body, "warren_broker_reconnects_total", {})).toBe(3);
  expect(sample(body, "warren_node_resources_available", { resource: "CPU" })).toBe(0);
  expect(sample(body, "warren_node_resources_available", { resource: "GPU" })).toBeUndefined();
  expect(sample(body, "warren_node_workers", {})).toBe(5);
  expect(sample(body, "warren_node_tasks_running", {})).toBe(4);
});

test("other paths and methods are 404; two nodes in one process keep their own registries", async () => {
  expect((await get(server.port, "/")).status).toBe(404);
  other = await serveMetrics({ ...source, nodeId: "n2", workers: () => 7 });
  expect(other.port).not.toBe(server.port);
  const [a, b] = await Promise.all([get(server.port, "/metrics"), get(other.port, "/metrics")]);
  expect(sample(a.body, "warren_node_workers", { node_id: "n1" })).toBe(5);
  expect(a.body).not.toContain('node_id="n2"');
  expect(sample(b.body, "warren_node_workers", { node_id: "n2" })).toBe(7);
});

test("close() stops serving", async () => {
  const s = await serveMetrics(source);
  await get(s.port, "/metrics");
  await s.close();
  await expect(get(s.port, "/metrics")).rejects.toThrow(/ECONNREFUSED/);
});
