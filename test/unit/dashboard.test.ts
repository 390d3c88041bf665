// The sample Grafana dashboard (dashboards/grafana.json) reads only what a node exports.
import * as fs from "node:fs";
import * as path from "node:path";
import { nodeMetrics } from "../../src/node/metrics";

const file = path.join(__dirname, "..", "..", "dashboards", "grafana.json");
const dashboard = JSON.parse(fs.readFileSync(file, "utf8"));

/** Every PromQL expression of the dashboard: its panels' queries and its variables'. */
function expressions(): string[] {
  const panels: { targets?: { expr: string }[] }[] = dashboard.panels;
  const variables: { query?: string | { query: string } }[] = dashboard.templating.list;
  return [
    ...panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
    ...variables.flatMap((v) => (v.query === undefined || v.query === "prometheus" ? [] : [typeof v.query === "string" ? v.query : v.query.query])),
  ];
}

const exported = nodeMetrics({
  nodeId: "n1",
  resources: () => ({ total: {}, available: {} }),
  workers: () => 0,
  idleWorkers: () => 0,
  tasksRunning: () => 0,
  tasks: () => [],
  actors: () => [],
  store: () => ({ objects: 0, bytes: 0 }),
  reconnects: () => 0,
  objectBytesSent: () => ({ direct: 0, broker: 0 }),
}).getMetricsAsArray();

test("every metric the dashboard's queries name is one a node exports, with the labels they use", () => {
  const names = new Map(exported.map((m) => [m.name, new Set([...(m as unknown as { labelNames: string[] }).labelNames, "node_id"])]));
  const used = new Set<string>();
  for (const expr of expressions()) {
    for (const [, name, labels] of expr.matchAll(/\b((?:warren|process|nodejs)_[a-z0-9_]+)(?:\{([^}]*)\})?/g)) {
      used.add(name);
      expect({ expr, name, exported: names.has(name) }).toEqual({ expr, name, exported: true });
      for (const [, label] of (labels ?? "").matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)) expect({ name, label, known: names.get(name)!.has(label) }).toEqual({ name, label, known: true });
    }
  }
  // It shows each metric warren itself adds.
  expect([...names.keys()].filter((n) => n.startsWith("warren_") && !used.has(n))).toEqual([]);
});

test("it is a dashboard Grafana imports: a title, a uid, panels with unique ids, a Prometheus data source variable", () => {
  expect(dashboard.title).toBe("warren");
  expect(typeof dashboard.uid).toBe("string");
  const ids = dashboard.panels.map((p: { id: number }) => p.id);
  expect(new Set(ids).size).toBe(ids.length);
  expect(dashboard.templating.list.find((v: { type: string }) => v.type === "datasource")?.query).toBe("prometheus");
});

test("the package ships it", () => {
  expect(require("../../package.json").files).toContain("dashboards");
});
