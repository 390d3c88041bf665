// Fencing and timeouts: a node the head declared dead exits once it runs again, with its
// workers, so an actor restarted elsewhere is never served twice; a request whose peer does not
// answer fails with an error naming it instead of waiting forever.
import * as fs from "node:fs";
import * as path from "node:path";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as amqp from "amqplib";
import * as warren from "warren";
import { Cluster, waitForCondition } from "warren/testing";
import { Where } from "../fixtures/placement";
import { processesWith } from "../helpers";
import { DEFAULT_ADDRESS, Topology } from "../../src/transport";

/** The parent of process `pid` (Linux /proc): a worker's is its node's daemon. */
function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

describe("a node the head declared dead (WARREN_HEAD_HUNG_S=4)", () => {
  let cluster: Cluster;

  beforeAll(async () => {
    process.env.WARREN_HEAD_HUNG_S = "4"; // the head (a child of this process) gives a silent node 4 s
    try {
      cluster = await Cluster.start({ head: { numCpus: 1 } });
    } finally {
      delete process.env.WARREN_HEAD_HUNG_S;
    }
    await warren.init({ address: cluster.address, cluster: cluster.cluster });
  }, 60_000);

  afterAll(async () => {
    await warren.shutdown();
    await cluster.shutdown();
  });

  test("exits with its workers once it runs again: the actor restarted elsewhere is served by one process", async () => {
    const hung = await cluster.addNode({ numCpus: 1, resources: { Custom1: 1 } });
    const a = Where.options({ resources: { Custom1: 1 }, maxRestarts: -1 }).remote();
    const firstPid = await warren.get(a.pid.remote());
    expect(await warren.get(a.node.remote())).toBe(hung);
    const daemon = parentOf(firstPid);
    const other = await cluster.addNode({ numCpus: 1, resources: { Custom1: 1 } });

    process.kill(daemon, "SIGSTOP"); // hung: its connection and its actor's worker stay up
    try {
      await waitForCondition(async () => (await warren.nodes()).some((n) => n.NodeID === hung && !n.Alive), 30);
    } finally {
      process.kill(daemon, "SIGCONT");
    }
    await waitForCondition(() => processesWith(`"nodeId":"${hung}"`).length === 0, 15); // the daemon and its workers
    const proc = (cluster as unknown as { nodes: Map<string, ChildProcess> }).nodes.get(hung)!;
    await waitForCondition(() => proc.exitCode !== null, 5);
    expect(proc.exitCode).not.toBe(0);
    const log = fs.readFileSync(path.join(cluster.sessionDir, `node_${hung.slice(0, 12)}`, "node.log"), "utf8");
    expect(log).toMatch(/declared dead by the head .*; exiting/);

    await waitForCondition(async () => (await warren.get(a.pid.remote())) !== firstPid, 30);
    const pids = await warren.get(Array.from({ length: 10 }, () => a.pid.remote()));
    expect(new Set(pids).size).toBe(1);
    expect(pids[0]).not.toBe(firstPid);
    expect(await warren.get(a.node.remote())).toBe(other);
  }, 120_000);
});

describe("a request whose peer does not answer (WARREN_REQUEST_TIMEOUT_S=2)", () => {
  test("fails naming the head and its request, instead of waiting forever", async () => {
    // A head queue nobody consumes: the cluster looks there (init() checks it exists) but its head is hung.
    const cluster = `test-${randomBytes(5).toString("hex")}`;
    const conn = await amqp.connect(process.env.WARREN_ADDRESS ?? DEFAULT_ADDRESS);
    process.env.WARREN_REQUEST_TIMEOUT_S = "2";
    try {
      const ch = await conn.createChannel();
      await ch.assertQueue(new Topology(cluster).head, { exclusive: true });
      const started = Date.now();
      const pending = new Promise((_, reject) => setTimeout(() => reject(new Error("init() still pending after 20 s")), 20_000).unref());
      await expect(Promise.race([warren.init({ cluster }), pending])).rejects.toThrow(
        `the head of cluster "${cluster}" did not answer head request node.list within 2 s; is it running? \`warren status --cluster ${cluster}\``,
      );
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(warren.isInitialized()).toBe(false);
    } finally {
      delete process.env.WARREN_REQUEST_TIMEOUT_S;
      await conn.close();
    }
  });
});
