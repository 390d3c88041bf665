/**
 * Prometheus metrics of a node, every series labelled with `node_id`: its resources (total and
 * free), workers, tasks by name and state (what its workers ran: worker/tally.ts), actors by class
 * and state, its object store, its broker reconnections, and prom-client's default process
 * metrics. Served as `GET /metrics` on 127.0.0.1 on an ephemeral port, which the node reports as
 * MetricsExportPort. Values are read from the source at scrape time; nothing is updated on the hot
 * path. dashboards/grafana.json reads them (test/unit/dashboard.test.ts keeps the two in step).
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { TaskTally } from "../wire/ipc";
import type { Ledger, Resources } from "../scheduling/shape";
import type { ObjectStore } from "../objects/store";
import type { BrokerLink } from "../transport/link";
import type { ActorCount, Actors } from "./actors";
import type { WorkerPool } from "./worker-pool";
import type { ObjectServer } from "./object-server";

export interface MetricsSource {
  nodeId: string;
  resources(): { total: Record<string, number>; available: Record<string, number> };
  workers(): number;
  idleWorkers(): number;
  tasksRunning(): number;
  /** What the node's workers ran, by task name, the exited ones' included. */
  tasks(): TaskTally[];
  actors(): ActorCount[];
  store(): { objects: number; bytes: number };
  /** How many times the node's broker connection was restored after an outage. */
  reconnects(): number;
  /** Bytes of objects sent to other nodes so far, by path. */
  objectBytesSent(): { direct: number; broker: number };
}

/** A node's parts as a MetricsSource. */
export function nodeSource(n: { nodeId: string; total: Resources; free: Ledger; pool: WorkerPool; actors: Actors; store: ObjectStore; link: BrokerLink; objects: ObjectServer }): MetricsSource {
  return {
    nodeId: n.nodeId,
    resources: () => ({ total: n.total, available: n.free.toResources() }),
    workers: () => n.pool.all.size,
    idleWorkers: () => n.pool.idle,
    tasksRunning: () => n.pool.busy,
    tasks: () => n.pool.tally(),
    actors: () => n.actors.counts(),
    store: () => n.store.stats(),
    reconnects: () => n.link.reconnections,
    objectBytesSent: () => n.objects.sent,
  };
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** A registry of the node's metrics (one per node, never prom-client's global one). */
export function nodeMetrics(source: MetricsSource): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ node_id: source.nodeId });
  collectDefaultMetrics({ register: registry });
  /** A gauge set afresh from the source at each scrape (series gone from the source go too). */
  const gauge = <L extends string>(name: string, help: string, labelNames: L[], read: (set: (labels: Record<L, string>, v: number) => void) => void) =>
    new Gauge({
      name, help, labelNames, registers: [registry],
      collect() {
        this.reset();
        read((labels, v) => this.set(labels, v));
      },
    });
  for (const which of ["total", "available"] as const) {
    gauge(`warren_node_resources_${which}`, `The node's ${which === "total" ? "total" : "free"} amount of each resource (CPU, GPU, memory bytes, custom)`, ["resource"], (set) => {
      for (const [resource, amount] of Object.entries(source.resources()[which])) set({ resource }, amount);
    });
  }
  gauge("warren_node_workers", "Worker processes of the node (idle and busy)", [], (set) => set({}, source.workers()));
  gauge("warren_node_workers_idle", "Worker processes of the node started and holding nothing", [], (set) => set({}, source.idleWorkers()));
  gauge("warren_node_tasks_running", "Tasks running on the node's workers now", [], (set) => set({}, source.tasksRunning()));
  gauge("warren_tasks", "Tasks and actor calls the node's workers ran, by name: RUNNING now; FINISHED and FAILED since the node started (as Ray's ray_tasks)", ["name", "state"], (set) => {
    for (const t of source.tasks()) {
      set({ name: t.name, state: "RUNNING" }, t.running);
      set({ name: t.name, state: "FINISHED" }, t.finished);
      set({ name: t.name, state: "FAILED" }, t.failed);
    }
  });
  gauge("warren_actors", "The node's actors by class: PENDING_CREATION and ALIVE now; DEAD, those it buried since it started (as Ray's ray_actors)", ["class", "state"], (set) => {
    for (const a of source.actors()) set({ class: a.className, state: a.state }, a.count);
  });
  gauge("warren_object_store_objects", "Objects in the node's object store", [], (set) => set({}, source.store().objects));
  gauge("warren_object_store_bytes", "Bytes the node's object store holds (LMDB pages in use and large values' files)", [], (set) => set({}, source.store().bytes));
  new Counter({
    name: "warren_broker_reconnects_total",
    help: "Times the node's broker connection was restored after an outage",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(source.reconnects());
    },
  });
  new Counter({
    name: "warren_object_sent_bytes_total",
    help: "Bytes of stored objects sent to other nodes: direct (the object manager port) or broker (chunks, the fallback)",
    labelNames: ["path"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [path, bytes] of Object.entries(source.objectBytesSent())) this.inc({ path }, bytes);
    },
  });
  return registry;
}

/** Serves the node's metrics on 127.0.0.1, port chosen by the system. */
export async function serveMetrics(source: MetricsSource): Promise<MetricsServer> {
  const registry = nodeMetrics(source);
  const server = http.createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" || url !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("warren node: only GET /metrics is served here\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (err) => res.writeHead(500, { "content-type": "text/plain" }).end(`metrics failed: ${String(err?.message ?? err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  // A scrape must never keep a stopping node alive.
  server.unref();
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        registry.clear();
      }),
  };
}
