// `warren broker`, run compiled (`node dist/src/cli/main.js broker ...`): its help, `status` of the
// shared broker and of a port where nothing listens, passwords never printed, a project-local
// RabbitMQ that `start` runs on a spare port, reported by `status`, reached by amqplib with the
// address's credentials, and stopped by `stop`, and a local 3-node cluster (`--nodes 3`) on three
// more ports, one cluster to rabbitmqctl and to a quorum queue, removed by `stop --nodes 3`. The
// shared broker on 5672 is only ever probed.
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { once } from "node:events";
import { execFileSync } from "node:child_process";
import * as amqp from "amqplib";
import { waitForCondition } from "warren/testing";
import { DEFAULT_ADDRESS } from "../../src/transport";
import { processesWith } from "../helpers";
import { CLI, brokerCli as broker } from "../spare-broker";

const ROOT = path.join(__dirname, "..", "..");
const STATE_DIR = path.join(ROOT, ".warren", "broker");
const shared = process.env.WARREN_ADDRESS ?? DEFAULT_ADDRESS;
/** The port this file starts its own broker on, and one where nothing ever listens. */
const SPARE = 5790;
const QUIET = 5791;
const NODE = `warren-${SPARE}@localhost`;
const SECRET = "s3cret-Pw";
const spare = `amqp://warren:${SECRET}@127.0.0.1:${SPARE}`;
/** The ports of the 3-node cluster this file starts, its nodes, and the folder that holds all its files. */
const CLUSTER_PORTS = [5792, 5793, 5794];
const CLUSTER_NODES = CLUSTER_PORTS.map((port) => `warren-${port}@localhost`);
const CLUSTER_DIR = path.join(STATE_DIR, `cluster-${CLUSTER_PORTS[0]}`);
const clusterUrls = CLUSTER_PORTS.map((port) => `amqp://warren:${SECRET}@127.0.0.1:${port}`);

/** The processes of one of this file's nodes (the shared epmd, which its VM may have started, is left alone). */
function nodeProcesses(node = NODE): number[] {
  return processesWith(`RABBITMQ_NODENAME=${node}`).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim() !== "epmd";
    } catch {
      return false;
    }
  });
}

function kill(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
}

/** Kills this file's cluster nodes and removes their folder. */
function removeCluster(): void {
  kill(CLUSTER_NODES.flatMap((node) => nodeProcesses(node)));
  fs.rmSync(CLUSTER_DIR, { recursive: true, force: true });
}

/** Kills this file's node and removes its files under .warren/broker/ (nothing of other nodes). */
function removeNode(): void {
  kill(nodeProcesses());
  fs.rmSync(path.join(STATE_DIR, `${NODE}.pid`), { force: true });
  fs.rmSync(path.join(STATE_DIR, `rabbitmq-${SPARE}.conf`), { force: true });
  for (const dir of ["log", "mnesia"].map((d) => path.join(STATE_DIR, d)).filter((d) => fs.existsSync(d))) {
    for (const entry of fs.readdirSync(dir).filter((e) => e.startsWith(NODE))) fs.rmSync(path.join(dir, entry), { recursive: true, force: true });
  }
}

beforeAll(() => {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before these tests`);
  removeNode(); // a fresh node, whose default user is the address's
  removeCluster();
});

afterAll(() => {
  removeNode();
  removeCluster();
});

describe("usage", () => {
  test.each([
    [[], /WARREN_BROKER_PORT +overrides the port of WARREN_ADDRESS/],
    [["start"], /Wait up to\s+60 s for it to answer/],
    [["stop"], /with rabbitmqctl, else with SIGTERM/],
    [["status"], /Exits 0 when the target address answers/],
  ])("warren broker %p --help", async (cmd, detail) => {
    const r = await broker({}, ...cmd, "--help");
    expect(r.code).toBe(0);
    expect(r.output).toContain(`Usage: warren broker${cmd.length ? ` ${cmd[0]}` : ""}`);
    expect(r.output).toMatch(detail);
  });

  test("--help of each broker command documents --nodes", async () => {
    for (const cmd of ["start", "stop", "status"]) {
      const r = await broker({}, cmd, "--help");
      expect(r.output).toMatch(/--nodes <n> +how many nodes: 1, or a local RabbitMQ cluster of 2 to 9/);
    }
    expect((await broker({}, "start", "--help")).output).toMatch(/nodes 2 to N join the first/);
  });

  test.each([["0"], ["abc"], ["10"], ["2.5"]])("--nodes %s is a usage error (exit code 2) naming the option and its values", async (value) => {
    const r = await broker({ WARREN_BROKER_PORT: String(QUIET) }, "status", "--nodes", value);
    expect(r.output).toContain(`option '--nodes <n>' argument '${value}' is invalid. must be a whole number of RabbitMQ nodes from 1 to 9`);
    expect(r.code).toBe(2);
  });

  test("the broker help names its three commands", async () => {
    const r = await broker({}, "--help");
    for (const c of ["start", "stop", "status"]) expect(r.output).toMatch(new RegExp(`^  ${c} `, "m"));
  });

  test.each([
    [{ WARREN_BROKER_PORT: "99999" }, /WARREN_BROKER_PORT must be a port number from 1 to 65535 \(got "99999"\)/],
    [{ WARREN_ADDRESS: `warren:${SECRET}@127.0.0.1:5672` }, /WARREN_ADDRESS must be an amqp:\/\/ or amqps:\/\/ URL/],
    [{ WARREN_ADDRESS: `amqp://warren:${SECRET}@127.0.0.1:99999` }, /WARREN_ADDRESS is not a valid URL/],
  ])("%p is a usage error (exit code 2) that does not echo the password", async (env, message) => {
    const r = await broker(env, "status");
    expect(r.output).toMatch(message);
    expect(r.output).not.toContain(SECRET);
    expect(r.code).toBe(2);
  });
});

describe("status and start against brokers this file does not run", () => {
  test("status of the shared broker says it answers", async () => {
    const r = await broker({ WARREN_ADDRESS: shared }, "status");
    expect(r.output).toMatch(/^broker: RabbitMQ answers at \S+:\d+$/m);
    expect(r.code).toBe(0);
  });

  test("start finds the shared broker answering and leaves it alone", async () => {
    const r = await broker({ WARREN_ADDRESS: shared }, "start");
    expect(r.output).toMatch(/^broker: RabbitMQ answers at \S+:\d+$/m);
    expect(r.output).not.toMatch(/starting RabbitMQ/);
    expect(r.code).toBe(0);
  });

  test("status where nothing listens says so, exits 1, and never shows the password", async () => {
    const r = await broker({ WARREN_ADDRESS: `amqp://warren:${SECRET}@127.0.0.1:${QUIET}/vh` }, "status");
    expect(r.output).toContain(`broker: nothing answers at 127.0.0.1:${QUIET}`);
    expect(r.output).toContain(`broker: project-local node warren-${QUIET}@localhost does not run`);
    expect(r.output).not.toContain(SECRET);
    expect(r.code).toBe(1);
  });

  test("WARREN_BROKER_PORT replaces the port of WARREN_ADDRESS", async () => {
    const r = await broker({ WARREN_ADDRESS: `amqp://warren:${SECRET}@127.0.0.1:5672`, WARREN_BROKER_PORT: String(QUIET) }, "status");
    expect(r.output).toContain(`nothing answers at 127.0.0.1:${QUIET}`);
    expect(r.code).toBe(1);
  });

  test("start cannot start a remote broker: exit 1, a redacted address", async () => {
    const r = await broker({ WARREN_ADDRESS: `amqp://warren:${SECRET}@broker.invalid:5672` }, "start");
    expect(r.output).toContain("the remote broker at broker.invalid:5672 does not answer (WARREN_ADDRESS=amqp://warren:***@broker.invalid:5672)");
    expect(r.output).not.toContain(SECRET);
    expect(r.code).toBe(1);
  });

  test("start refuses a port whose management port is taken, and starts nothing", async () => {
    const taken = net.createServer().listen(QUIET + 10000, "127.0.0.1");
    await once(taken, "listening");
    try {
      const r = await broker({ WARREN_BROKER_PORT: String(QUIET) }, "start");
      expect(r.output).toContain(`cannot start node warren-${QUIET}@localhost on port ${QUIET}: already in use on 127.0.0.1: ${QUIET + 10000} (management)`);
      expect(r.output).toContain("Pick another port with WARREN_BROKER_PORT");
      expect(r.code).toBe(1);
      expect(processesWith(`RABBITMQ_NODENAME=warren-${QUIET}@localhost`)).toEqual([]);
      expect(fs.existsSync(path.join(STATE_DIR, `rabbitmq-${QUIET}.conf`))).toBe(false);
    } finally {
      taken.close();
    }
  });

  test("start --nodes 3 refuses ports where something else listens, and starts nothing", async () => {
    const squatter = net.createServer().listen(CLUSTER_PORTS[1], "127.0.0.1");
    await once(squatter, "listening");
    try {
      const r = await broker({ WARREN_BROKER_PORT: String(CLUSTER_PORTS[0]) }, "start", "--nodes", "3");
      expect(r.output).toContain(`cannot start a cluster of 3 nodes on ports ${CLUSTER_PORTS[0]} to ${CLUSTER_PORTS[2]}: 127.0.0.1:${CLUSTER_PORTS[1]} accepts TCP connections but does not answer AMQP 0-9-1, and it is not a node of this cluster`);
      expect(r.code).toBe(1);
      for (const node of CLUSTER_NODES) expect(nodeProcesses(node)).toEqual([]);
      expect(fs.existsSync(CLUSTER_DIR)).toBe(false);
    } finally {
      squatter.close();
    }
  });

  test("stop --nodes 3 with no cluster on the ports has nothing to stop", async () => {
    const r = await broker({ WARREN_BROKER_PORT: String(CLUSTER_PORTS[0]) }, "stop", "--nodes", "3");
    expect(r.output).toContain(`no project-local cluster runs for ports ${CLUSTER_PORTS[0]} to ${CLUSTER_PORTS[2]} (nodes ${CLUSTER_NODES.join(", ")}); nothing to stop`);
    expect(r.code).toBe(0);
  });

  test("stop with no project-local broker on the port has nothing to stop", async () => {
    const r = await broker({ WARREN_BROKER_PORT: String(QUIET) }, "stop");
    expect(r.output).toContain(`no project-local broker runs for port ${QUIET} (node warren-${QUIET}@localhost); nothing to stop`);
    expect(r.code).toBe(0);
  });
});

describe(`a project-local broker on port ${SPARE}`, () => {
  const env = { WARREN_ADDRESS: spare, WARREN_BROKER_PORT: String(SPARE) };
  const pidFile = path.join(STATE_DIR, `${NODE}.pid`);

  test("start starts one and says where it is, without the password", async () => {
    const r = await broker(env, "start");
    expect(r.output).toContain(`broker: nothing answers at 127.0.0.1:${SPARE}: starting RabbitMQ node ${NODE}`);
    expect(r.output).toMatch(new RegExp(`waiting for 127.0.0.1:${SPARE} \\.* up`));
    expect(r.output).toContain(`broker: AMQP address:  amqp://warren:***@127.0.0.1:${SPARE} (node ${NODE})`);
    expect(r.output).toContain(`broker: management UI: http://127.0.0.1:${SPARE + 10000} (user warren, the address's password)`);
    expect(r.output).toContain(`broker: stop it with:  WARREN_BROKER_PORT=${SPARE} warren broker stop`);
    expect(r.output).not.toContain(SECRET);
    expect(r.code).toBe(0);
    expect(nodeProcesses().length).toBeGreaterThan(0);
    expect(fs.readFileSync(path.join(STATE_DIR, `rabbitmq-${SPARE}.conf`), "utf8")).toMatch(new RegExp(`^listeners\\.tcp\\.default = 127\\.0\\.0\\.1:${SPARE}$`, "m"));
  }, 150_000);

  test("status reports it answering and its node running under the pid it wrote", async () => {
    const r = await broker(env, "status");
    const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
    expect(nodeProcesses()).toContain(pid);
    expect(r.output).toContain(`broker: RabbitMQ answers at 127.0.0.1:${SPARE}`);
    expect(r.output).toContain(`broker: project-local node ${NODE} runs (pid ${pid}; AMQP 127.0.0.1:${SPARE}`);
    expect(r.code).toBe(0);
  });

  test("amqplib connects with the address's user and password, which the new node was given", async () => {
    const conn = await amqp.connect(spare);
    try {
      const ch = await conn.createChannel();
      const { queue } = await ch.assertQueue("", { exclusive: true });
      ch.sendToQueue(queue, Buffer.from("hello"));
      await waitForCondition(async () => (await ch.checkQueue(queue)).messageCount === 1);
    } finally {
      await conn.close();
    }
  });

  test("start again finds it answering", async () => {
    const r = await broker(env, "start");
    expect(r.output).toContain(`broker: RabbitMQ answers at 127.0.0.1:${SPARE}`);
    expect(r.output).not.toMatch(/starting RabbitMQ/);
    expect(r.code).toBe(0);
  });

  test("stop stops it, and only it: its processes are gone, the shared broker still answers", async () => {
    const r = await broker(env, "stop");
    expect(r.output).toMatch(new RegExp(`broker: stopping RabbitMQ node ${NODE} \\(pid \\d+\\)`));
    expect(r.output).toContain("broker: stopped");
    expect(r.code).toBe(0);
    await waitForCondition(() => nodeProcesses().length === 0, 30);

    const after = await broker(env, "status");
    expect(after.output).toContain(`broker: nothing answers at 127.0.0.1:${SPARE}`);
    expect(after.output).toContain(`broker: project-local node ${NODE} does not run`);
    expect(after.code).toBe(1);
    expect((await broker({ WARREN_ADDRESS: shared }, "status")).code).toBe(0);
  }, 150_000);
});

describe(`a local 3-node cluster on ports ${CLUSTER_PORTS.join(", ")}`, () => {
  const env = { WARREN_ADDRESS: clusterUrls[0] };
  const clusterHome = path.join(CLUSTER_DIR, "home");
  /** `rabbitmqctl -n node cluster_status`, with the cluster's Erlang cookie: the nodes it sees running. */
  const runningNodes = (node: string): string[] => {
    const out = execFileSync("/usr/lib/rabbitmq/bin/rabbitmqctl", ["-q", "-n", node, "cluster_status", "--formatter", "json"], { env: { ...process.env, HOME: clusterHome }, encoding: "utf8", timeout: 60_000 });
    return (JSON.parse(out) as { running_nodes: string[] }).running_nodes.sort();
  };

  test("start --nodes 3 starts three nodes, joins two to the first, and prints the address list without the password", async () => {
    const r = await broker(env, "start", "--nodes", "3");
    for (const [i, node] of CLUSTER_NODES.entries()) {
      expect(r.output).toContain(`broker: nothing answers at 127.0.0.1:${CLUSTER_PORTS[i]}: starting RabbitMQ node ${node}`);
    }
    expect(r.output).toContain(`broker: joining ${CLUSTER_NODES[1]} to the cluster of ${CLUSTER_NODES[0]}`);
    expect(r.output).toContain(`broker: joining ${CLUSTER_NODES[2]} to the cluster of ${CLUSTER_NODES[0]}`);
    expect(r.output).toContain(`broker: cluster:       3 nodes running (${CLUSTER_NODES.join(", ")})`);
    expect(r.output).toContain(`broker: AMQP address:  ${CLUSTER_PORTS.map((port) => `amqp://warren:***@127.0.0.1:${port}`).join(",")} (nodes ${CLUSTER_NODES.join(", ")})`);
    expect(r.output).toContain(`broker: stop it with:  WARREN_BROKER_PORT=${CLUSTER_PORTS[0]} warren broker stop --nodes 3`);
    expect(r.output).not.toContain(SECRET);
    expect(r.code).toBe(0);
    for (const node of CLUSTER_NODES) expect(nodeProcesses(node).length).toBeGreaterThan(0);
    for (const node of CLUSTER_NODES) expect(fs.existsSync(path.join(CLUSTER_DIR, node, "mnesia", node))).toBe(true);
  }, 240_000);

  test("rabbitmqctl cluster_status on each node lists all three running", () => {
    for (const node of CLUSTER_NODES) expect(runningNodes(node)).toEqual([...CLUSTER_NODES].sort());
  });

  test("a quorum queue declared on the first node is on the others, and a message sent on one is read on another", async () => {
    const conns = await Promise.all(clusterUrls.map((url) => amqp.connect(url)));
    const queue = `warren.test.broker-cluster.${process.pid}`;
    try {
      const [first, second, third] = await Promise.all(conns.map((c) => c.createChannel()));
      await first.assertQueue(queue, { durable: true, arguments: { "x-queue-type": "quorum" } });
      second.sendToQueue(queue, Buffer.from("across the cluster"), { persistent: true });
      await waitForCondition(async () => (await third.checkQueue(queue)).messageCount === 1);
      const got = await third.get(queue, { noAck: true });
      expect(got && got.content.toString()).toBe("across the cluster");
      await first.deleteQueue(queue);
    } finally {
      await Promise.all(conns.map((c) => c.close()));
    }
  });

  test("start --nodes 3 again finds the three answering and already one cluster", async () => {
    const r = await broker(env, "start", "--nodes", "3");
    for (const [i, node] of CLUSTER_NODES.entries()) expect(r.output).toContain(`broker: RabbitMQ answers at 127.0.0.1:${CLUSTER_PORTS[i]} (node ${node})`);
    expect(r.output).not.toMatch(/starting RabbitMQ|joining/);
    expect(r.code).toBe(0);
  }, 120_000);

  test("status --nodes 3 reports each node and the cluster, exit code 0", async () => {
    const r = await broker(env, "status", "--nodes", "3");
    for (const [i, node] of CLUSTER_NODES.entries()) {
      expect(r.output).toContain(`broker: RabbitMQ answers at 127.0.0.1:${CLUSTER_PORTS[i]}`);
      expect(r.output).toMatch(new RegExp(`broker: project-local node ${node} runs \\(pid \\d+; AMQP 127\\.0\\.0\\.1:${CLUSTER_PORTS[i]}`));
    }
    expect(r.output).toContain("broker: 3 of 3 nodes answer");
    expect(r.output).toContain(`broker: cluster of ${CLUSTER_NODES[0]}: ${[...CLUSTER_NODES].sort().join(", ")} running`);
    expect(r.output).not.toContain(SECRET);
    expect(r.code).toBe(0);
  });

  test("status exits 1 when a node of the cluster does not answer: --nodes 4 counts a fourth port where nothing runs", async () => {
    const r = await broker(env, "status", "--nodes", "4");
    expect(r.output).toContain(`broker: nothing answers at 127.0.0.1:${CLUSTER_PORTS[2] + 1}`);
    expect(r.output).toContain(`broker: project-local node warren-${CLUSTER_PORTS[2] + 1}@localhost does not run`);
    expect(r.output).toContain("broker: 3 of 4 nodes answer");
    expect(r.code).toBe(1);
  });

  test("stop --nodes 3 stops the three nodes and removes their files", async () => {
    const r = await broker(env, "stop", "--nodes", "3");
    for (const node of CLUSTER_NODES) expect(r.output).toMatch(new RegExp(`broker: stopping RabbitMQ node ${node} \\(pid \\d+\\)`));
    expect(r.output).toContain(`broker: stopped; removed ${CLUSTER_DIR}`);
    expect(r.code).toBe(0);
    await waitForCondition(() => CLUSTER_NODES.every((node) => nodeProcesses(node).length === 0), 30);
    expect(fs.existsSync(CLUSTER_DIR)).toBe(false);

    const after = await broker(env, "status", "--nodes", "3");
    expect(after.output).toContain("broker: 0 of 3 nodes answer");
    expect(after.code).toBe(1);
    expect((await broker({ WARREN_ADDRESS: shared }, "status")).code).toBe(0);
  }, 150_000);
});
