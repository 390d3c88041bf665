/**
 * Prometheus metrics of a node: its resources (total and free), workers and running tasks, plus
 * prom-client's default process metrics, every series labelled with `node_id`. Served as
 * `GET /metrics` on 127.0.0.1 on an ephemeral port, which the node reports as MetricsExportPort.
 * Values are read from the source at scrape time; nothing is updated on the hot path.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";

export interface MetricsSource {
  nodeId: string;
  resources(): { total: Record<string, number>; available: Record<string, number> };
  workers(): number;
  tasksRunning(): number;
  /** Bytes of objects sent to other nodes so far, by path. */
  objectBytesSent(): { direct: number; broker: number };
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
  const perResource = (which: "total" | "available") =>
    new Gauge({
      name: `warren_node_resources_${which}`,
      help: `The node's ${which === "total" ? "total" : "free"} amount of each resource (CPU, GPU, memory bytes, custom)`,
      labelNames: ["resource"],
      registers: [registry],
      collect() {
        this.reset();
        for (const [resource, amount] of Object.entries(source.resources()[which])) this.set({ resource }, amount);
      },
    });
  perResource("total");
  perResource("available");
  new Gauge({
    name: "warren_node_workers",
    help: "Worker processes of the node (idle and busy)",
    registers: [registry],
    collect() {
      this.set(source.workers());
    },
  });
  new Gauge({
    name: "warren_node_tasks_running",
    help: "Tasks running on the node's workers now",
    registers: [registry],
    collect() {
      this.set(source.tasksRunning());
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
