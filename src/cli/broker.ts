/**
 * `warren broker start|stop|status` (what `npm run broker` runs): makes sure a RabbitMQ broker
 * answers where warren expects one, starting a project-local node (rabbitmq.ts) when nothing
 * answers at a local target, and stops or reports that node. This file owns what the user reads:
 * the commands' help and every line they print. Lines start with `broker: `; failures are thrown
 * as WarrenError (exit 1), a malformed WARREN_ADDRESS / WARREN_BROKER_PORT is a UsageError (exit 2).
 * With `--nodes N` (N > 1) each command acts on the local cluster of N nodes (rabbitmq-cluster.ts)
 * on the target port and the ones after it.
 *
 * Invariant: an address is printed through redactAddress only, and a password never any other way.
 */
import * as fs from "node:fs";
import { ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { WarrenError } from "../errors";
import { redactAddress } from "../address";
import { BrokerTarget, Probe, brokerTarget, hostPort, isLocal, portInUse, probe } from "./broker-address";
import { Installation, LocalNode, RABBITMQ_SEARCHED, STATE_DIR, findRabbitmq } from "./rabbitmq";
import { LocalCluster, MAX_CLUSTER_NODES } from "./rabbitmq-cluster";

/** How long `start` waits for a node it started (or found booting) to answer. */
const START_WAIT_S = 60;

export const HELP = {
  broker: `
Environment (for every command):
  WARREN_ADDRESS       amqp://user:pass@host:port/vhost (default amqp://guest:guest@127.0.0.1:5672)
  WARREN_BROKER_PORT   overrides the port of WARREN_ADDRESS

The project-local broker keeps its data, logs and pid file under .warren/broker/ in the warren
package. Passwords are never printed.

--nodes N (1 to ${MAX_CLUSTER_NODES}, default 1), on each command: a local RabbitMQ cluster of N nodes on the AMQP
ports PORT to PORT+N-1 (PORT: the target's), kept under .warren/broker/cluster-PORT/.`,
  start: `
1. If something answers AMQP 0-9-1 at the target address, say so and exit 0.
2. If the target host is not this machine, exit 1: a remote broker cannot be started from here.
3. Find RabbitMQ 3.10 or later, looking in this order:
     ${RABBITMQ_SEARCHED}
   When it is missing, say how to install it and exit 1.
4. Start a detached node with the project's rabbitmq.conf and broker/enabled_plugins: warren@localhost
   on 5672; warren-PORT@localhost on another port, with management on PORT+10000 and Prometheus on
   PORT+10020. The address's user, password and vhost become the new node's defaults. Wait up to
   ${START_WAIT_S} s for it to answer. System settings (/etc/rabbitmq/rabbitmq-env.conf, conf.d,
   advanced.config) are not read.

The broker keeps running after this command exits: stop it with \`warren broker stop\` (same
WARREN_ADDRESS / WARREN_BROKER_PORT).

With --nodes N, N nodes as in 4., on PORT to PORT+N-1, each with its own name, ports, data and
logs, and one shared Erlang cookie; nodes 2 to N join the first
(rabbitmqctl stop_app, join_cluster, start_app). It prints the comma-separated address list to
pass to init({ address }) or WARREN_ADDRESS. If every port already answers and none is a node of
this cluster, it leaves them alone.`,
  stop: `
Stops the node that \`start\` started for the target port (warren@localhost, or
warren-PORT@localhost) with rabbitmqctl, else with SIGTERM. Never touches any other broker, such as
a system-wide one. With --nodes N, stops the N nodes of the cluster and removes them: their data,
logs and configuration, and the cluster's Erlang cookie.`,
  status: `
Exits 0 when the target address answers AMQP 0-9-1, 1 otherwise. With --nodes N, reports each of
the N ports and nodes, and the cluster's running nodes; exits 0 only when all N answer.`,
};

function say(line: string): void {
  console.log(`broker: ${line}`);
}

/** What a probe found at `at`, as a sentence. */
function answer(found: Probe, at: string): string {
  switch (found) {
    case "amqp": return `RabbitMQ answers at ${at}`;
    case "header": return `${at} answers with another AMQP protocol version, not AMQP 0-9-1`;
    case "silent": return `${at} accepts TCP connections but does not answer AMQP 0-9-1`;
    case "closed": return `nothing answers at ${at}`;
  }
}

/** The command that stops the node (or the cluster of `size` nodes) of this port, runnable as printed (the address's password is not needed). */
function stopCommand(node: LocalNode, size = 1): string {
  const pinned = node.ports.amqp !== 5672 || process.env.WARREN_ADDRESS || process.env.WARREN_BROKER_PORT;
  const nodes = size > 1 ? ` --nodes ${size}` : "";
  return pinned ? `WARREN_BROKER_PORT=${node.ports.amqp} warren broker stop${nodes}` : `warren broker stop${nodes}`;
}

function notInstalled(): WarrenError {
  return new WarrenError(
    `RabbitMQ is not installed (no rabbitmq-server in ${RABBITMQ_SEARCHED}). Install it, then run \`warren broker start\` again:\n` +
      "  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y rabbitmq-server\n" +
      "  macOS:          brew install rabbitmq\n" +
      "  Docker:         docker run -d -p 5672:5672 -p 15672:15672 rabbitmq:3-management\n" +
      "(With Docker, or a system service, the broker answers on 127.0.0.1:5672 and `warren broker start` leaves it alone.)",
  );
}

/** Throws when one of the ports a node that does not run yet would listen on is taken. */
async function checkFree(node: LocalNode): Promise<void> {
  node.checkPorts();
  const { management, prometheus, distribution } = node.ports;
  const ports = [[management, "management"], [prometheus, "Prometheus"], [distribution, "Erlang distribution"]] as const;
  const inUse = await Promise.all(ports.map(([port]) => portInUse(port)));
  const busy = ports.filter((_, i) => inUse[i]).map(([port, what]) => `${port} (${what})`);
  if (busy.length > 0) {
    throw new WarrenError(`cannot start node ${node.name} on port ${node.ports.amqp}: already in use on 127.0.0.1: ${busy.join(", ")}. Pick another port with WARREN_BROKER_PORT, or free these ports.`);
  }
}

/**
 * Starts the nodes that do not run yet, once the ports of every one of them proved free (so that
 * a taken port starts none); resolves with the process of each node this call started, undefined
 * for one found running (booting).
 */
async function launch(nodes: LocalNode[], install: Installation): Promise<Map<LocalNode, ChildProcess | undefined>> {
  const idle = nodes.filter((node) => node.pid() === undefined);
  for (const node of idle) await checkFree(node);
  const children = new Map<LocalNode, ChildProcess | undefined>();
  for (const node of nodes) {
    const pid = node.pid();
    if (pid !== undefined) {
      say(`node ${node.name} already runs (pid ${pid}) but does not answer yet at 127.0.0.1:${node.ports.amqp}; waiting`);
      children.set(node, undefined);
      continue;
    }
    node.prepare();
    say(`nothing answers at 127.0.0.1:${node.ports.amqp}: starting RabbitMQ node ${node.name}`);
    say(`  server: ${install.server}`);
    say(`  config: ${node.configFile}`);
    children.set(node, node.launch(install));
  }
  return children;
}

/** Waits until the node answers; throws with its logs when it exits first or stays silent too long. */
async function awaitAnswer(node: LocalNode, child: ChildProcess | undefined, stopHint = stopCommand(node)): Promise<void> {
  let exited = false;
  child?.once("exit", () => (exited = true));
  process.stdout.write(`broker: waiting for 127.0.0.1:${node.ports.amqp} `);
  const deadline = Date.now() + START_WAIT_S * 1000;
  while (Date.now() < deadline) {
    if ((await probe("127.0.0.1", node.ports.amqp)) === "amqp") {
      process.stdout.write(" up\n");
      return;
    }
    if ((child === undefined || exited) && node.pid() === undefined) {
      process.stdout.write(" failed\n");
      throw new WarrenError(`RabbitMQ node ${node.name} exited before answering at 127.0.0.1:${node.ports.amqp}\n${node.logTail()}`);
    }
    process.stdout.write(".");
    await sleep(1000);
  }
  process.stdout.write(" timed out\n");
  throw new WarrenError(
    `RabbitMQ node ${node.name} did not answer at 127.0.0.1:${node.ports.amqp} within ${START_WAIT_S} s\n${node.logTail()}\n` +
      `It may still be booting; stop it with \`${stopHint}\`.`,
  );
}

/** What `start` prints once the nodes answer: the address (a comma-separated list for a cluster), their URLs, and how to stop them. */
function printReady(nodes: LocalNode[], t: BrokerTarget, dataDir: string): void {
  const addresses = nodes.map((node) => {
    const local = new URL(t.address);
    local.hostname = "127.0.0.1";
    local.port = String(node.ports.amqp);
    return local.toString();
  });
  const names = nodes.map((node) => node.name).join(", ");
  say(`AMQP address:  ${redactAddress(addresses.join(","))} (node${nodes.length > 1 ? "s" : ""} ${names})`);
  say(`management UI: ${nodes.map((node) => `http://127.0.0.1:${node.ports.management}`).join(", ")} (user ${t.user ?? "guest"}, the address's password)`);
  say(`Prometheus:    ${nodes.map((node) => `http://127.0.0.1:${node.ports.prometheus}/metrics`).join(", ")}`);
  say(`data and logs: ${dataDir}`);
  say(`stop it with:  ${stopCommand(nodes[0], nodes.length)}`);
}

/** The installation that starts nodes for the target; throws when the target is remote or amqps, or RabbitMQ is missing. */
function installFor(t: BrokerTarget, at: string): Installation {
  if (!isLocal(t.host)) {
    throw new WarrenError(`the remote broker at ${at} does not answer (WARREN_ADDRESS=${redactAddress(t.address)}): start it there, or point WARREN_ADDRESS at one that runs`);
  }
  if (t.scheme === "amqps") throw new WarrenError(`nothing answers at ${at}, and \`warren broker start\` only starts plain amqp:// brokers`);
  const install = findRabbitmq();
  if (install === undefined) throw notInstalled();
  return install;
}

/** `start`, with `size` > 1: the local cluster of that many nodes on the target port and the ones after it. */
export async function start(size = 1): Promise<number> {
  const t = brokerTarget();
  if (size > 1) return startCluster(t, new LocalCluster(t, size));
  const at = hostPort(t.host, t.port);
  const found = await probe(t.host, t.port);
  if (found === "amqp") {
    say(answer(found, at));
    return 0;
  }
  if (found !== "closed") throw new WarrenError(`${answer(found, at)}: point WARREN_ADDRESS (or WARREN_BROKER_PORT) at a RabbitMQ broker`);
  const install = installFor(t, at);

  const node = new LocalNode(t);
  await awaitAnswer(node, (await launch([node], install)).get(node));
  printReady([node], t, STATE_DIR);
  if (t.host !== "127.0.0.1" && (await probe(t.host, t.port)) !== "amqp") {
    console.error(`broker: warning: the broker answers at 127.0.0.1:${t.port} but not at ${at}`);
  }
  return 0;
}

/**
 * Starts the cluster's nodes that do not answer, makes every member that is not in the first
 * one's cluster yet join it, and checks that the first one sees them all running.
 */
async function startCluster(t: BrokerTarget, cluster: LocalCluster): Promise<number> {
  const { members, first } = cluster;
  const size = members.length;
  const found = await Promise.all(members.map((node) => probe(t.host, node.ports.amqp)));
  const foreign = members.filter((node, i) => found[i] !== "closed" && node.pid() === undefined);
  if (foreign.length === size && found.every((f) => f === "amqp")) {
    for (const node of members) say(`${answer("amqp", hostPort(t.host, node.ports.amqp))}, not a node \`warren broker start\` started: left alone`);
    return 0;
  }
  const install = installFor(t, hostPort(t.host, t.port));
  if (foreign.length > 0) {
    const taken = foreign.map((node) => answer(found[members.indexOf(node)], hostPort(t.host, node.ports.amqp))).join("; ");
    throw new WarrenError(`cannot start a cluster of ${size} nodes on ports ${t.port} to ${t.port + size - 1}: ${taken}, and ${foreign.length > 1 ? "they are not nodes" : "it is not a node"} of this cluster. Pick another port with WARREN_BROKER_PORT, or stop what runs there.`);
  }
  for (const [i, node] of members.entries()) if (found[i] === "amqp") say(`${answer("amqp", hostPort(t.host, node.ports.amqp))} (node ${node.name})`);
  const children = await launch(members.filter((_, i) => found[i] !== "amqp"), install);
  for (const [node, child] of children) await awaitAnswer(node, child, stopCommand(first, size));
  for (const node of members.slice(1)) {
    if (cluster.joined(install, node)) continue;
    say(`joining ${node.name} to the cluster of ${first.name}`);
    cluster.join(install, node);
  }
  const running = cluster.runningNodes(install, first) ?? [];
  const missing = members.filter((node) => !running.includes(node.name)).map((node) => node.name);
  if (missing.length > 0) {
    throw new WarrenError(`${missing.join(", ")} did not join the cluster of ${first.name} (it runs ${running.join(", ") || "no nodes rabbitmqctl could list"}); stop it with \`${stopCommand(first, size)}\` and try again`);
  }
  say(`cluster:       ${size} nodes running (${members.map((node) => node.name).join(", ")})`);
  printReady(members, t, cluster.dir);
  return 0;
}

/** Stops one running node with rabbitmqctl, else SIGTERM; throws when it still runs. */
async function stopNode(node: LocalNode, pid: number, install: Installation | undefined): Promise<void> {
  if (install === undefined) throw new WarrenError(`node ${node.name} runs (pid ${pid}) but rabbitmqctl was not found; stop it with \`kill ${pid}\``);
  say(`stopping RabbitMQ node ${node.name} (pid ${pid})`);
  if (!node.stopWithCtl(install)) {
    console.error(`broker: rabbitmqctl could not stop ${node.name}; sending SIGTERM to pid ${pid}`);
    if (!(await node.terminate(pid))) throw new WarrenError(`RabbitMQ node ${node.name} (pid ${pid}) still runs 30 s after SIGTERM; kill it with \`kill -9 ${pid}\``);
  }
}

/** `stop`, with `size` > 1: stops the local cluster's nodes, the last first, and removes the cluster's folder. */
export async function stop(size = 1): Promise<number> {
  const t = brokerTarget();
  if (size > 1) return stopCluster(new LocalCluster(t, size));
  const node = new LocalNode(t);
  const pid = node.pid();
  if (pid === undefined) {
    say(`no project-local broker runs for port ${node.ports.amqp} (node ${node.name}); nothing to stop`);
    return 0;
  }
  await stopNode(node, pid, findRabbitmq());
  say("stopped");
  return 0;
}

async function stopCluster(cluster: LocalCluster): Promise<number> {
  const running = cluster.members.flatMap((node) => {
    const pid = node.pid();
    return pid === undefined ? [] : [{ node, pid }];
  });
  const names = cluster.members.map((node) => node.name).join(", ");
  if (running.length === 0 && !fs.existsSync(cluster.dir)) {
    say(`no project-local cluster runs for ports ${cluster.first.ports.amqp} to ${cluster.first.ports.amqp + cluster.members.length - 1} (nodes ${names}); nothing to stop`);
    return 0;
  }
  const install = findRabbitmq();
  for (const { node, pid } of running.reverse()) await stopNode(node, pid, install);
  cluster.remove();
  say(`stopped; removed ${cluster.dir}`);
  return 0;
}

/** The line `status` prints about a project-local node. */
function nodeLine(node: LocalNode): string {
  const pid = node.pid();
  const { amqp, management } = node.ports;
  return pid === undefined
    ? `project-local node ${node.name} does not run`
    : `project-local node ${node.name} runs (pid ${pid}; AMQP 127.0.0.1:${amqp}, management http://127.0.0.1:${management}, logs ${node.logDir})`;
}

/** `status`, with `size` > 1: every node of the local cluster; 0 only when all of them answer. */
export async function status(size = 1): Promise<number> {
  const t = brokerTarget();
  const cluster = size > 1 ? new LocalCluster(t, size) : undefined;
  const nodes = cluster?.members ?? [new LocalNode(t)];
  const found = await Promise.all(nodes.map((node) => probe(t.host, node.ports.amqp)));
  for (const [i, node] of nodes.entries()) {
    say(answer(found[i], hostPort(t.host, node.ports.amqp)));
    say(nodeLine(node));
  }
  const answering = found.filter((f) => f === "amqp").length;
  if (cluster !== undefined) {
    say(`${answering} of ${size} nodes answer`);
    const install = findRabbitmq();
    const running = install && cluster.first.pid() !== undefined ? cluster.runningNodes(install, cluster.first) : undefined;
    if (running !== undefined) say(`cluster of ${cluster.first.name}: ${running.sort().join(", ")} running`);
  }
  return answering === size ? 0 : 1;
}
