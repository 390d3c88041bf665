// Seed pattern "Inspecting Cluster State": the nodes of the cluster, its total resources and what
// is free now.
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as warren from "warren";

async function main() {
  await warren.init();

  const nodes = await warren.nodes();
  console.log(nodes);
  assert.equal(nodes.length, 1);
  const [node] = nodes;
  for (const field of [
    "NodeID",
    "Alive",
    "NodeManagerAddress",
    "NodeManagerHostname",
    "ObjectStorePath",
    "MetricsExportPort",
    "Resources",
    "IsHead",
  ]) {
    assert.ok(field in node, `nodes()[0] has no ${field}`);
  }
  assert.equal(node.Alive, true);
  assert.equal(node.IsHead, true);
  assert.match(node.NodeID, /^[0-9a-f]+$/);
  assert.equal(node.NodeManagerHostname, os.hostname());
  assert.ok(fs.existsSync(node.ObjectStorePath), `no object store at ${node.ObjectStorePath}`);
  // Every node serves Prometheus metrics on MetricsExportPort (on the loopback interface).
  assert.ok(node.MetricsExportPort > 0);
  const metrics = await (await fetch(`http://127.0.0.1:${node.MetricsExportPort}/metrics`)).text();
  const cpuLine = metrics.split("\n").find((l) => l.startsWith("warren_node_resources_total{") && l.includes('resource="CPU"'));
  console.log("metrics:", cpuLine);
  assert.ok(cpuLine, "the node's metrics have no CPU total");
  assert.ok(node.Resources.CPU > 0);
  assert.equal(node.Resources[`node:${node.NodeManagerAddress}`], 1);

  // The total capacity of the cluster: with one node, that node's Resources.
  const total = await warren.clusterResources();
  console.log("clusterResources():", total);
  assert.deepEqual(total, node.Resources);

  // What is free now: nothing runs, so everything is.
  const available = await warren.availableResources();
  console.log("availableResources():", available);
  assert.equal(available.CPU, total.CPU);

  await warren.shutdown();
}

if (require.main === module) main();
