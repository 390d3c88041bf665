/**
 * `warren broker start|stop|status` (what `npm run broker` runs): makes sure a RabbitMQ broker
 * answers where warren expects one, starting a project-local node (rabbitmq.ts) when nothing
 * answers at a local target, and stops or reports that node. This file owns what the user reads:
 * the commands' help and every line they print. Lines start with `broker: `; failures are thrown
 * as WarrenError (exit 1), a malformed WARREN_ADDRESS / WARREN_BROKER_PORT is a UsageError (exit 2).
 *
 * Invariant: an address is printed through redactAddress only, and a password never any other way.
 */
import { ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { WarrenError } from "../errors";
import { redactAddress } from "../address";
import { BrokerTarget, Probe, brokerTarget, hostPort, isLocal, portInUse, probe } from "./broker-address";
import { Installation, LocalNode, RABBITMQ_SEARCHED, STATE_DIR, findRabbitmq } from "./rabbitmq";

/** How long `start` waits for a node it started (or found booting) to answer. */
const START_WAIT_S = 60;

export const HELP = {
  broker: `
Environment (for every command):
  WARREN_ADDRESS       amqp://user:pass@host:port/vhost (default amqp://guest:guest@127.0.0.1:5672)
  WARREN_BROKER_PORT   overrides the port of WARREN_ADDRESS

The project-local broker keeps its data, logs and pid file under .warren/broker/ in the warren
package. Passwords are never printed.`,
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
WARREN_ADDRESS / WARREN_BROKER_PORT).`,
  stop: `
Stops the node that \`start\` started for the target port (warren@localhost, or
warren-PORT@localhost) with rabbitmqctl, else with SIGTERM. Never touches any other broker, such as
a system-wide one.`,
  status: `
Exits 0 when the target address answers AMQP 0-9-1, 1 otherwise.`,
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

/** The command that stops the node of this port, runnable as printed (the address's password is not needed). */
function stopCommand(node: LocalNode): string {
  const pinned = node.ports.amqp !== 5672 || process.env.WARREN_ADDRESS || process.env.WARREN_BROKER_PORT;
  return pinned ? `WARREN_BROKER_PORT=${node.ports.amqp} warren broker stop` : "warren broker stop";
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

/** Starts the node unless it already runs (booting); resolves with its process when this call started it. */
async function launch(node: LocalNode, install: Installation): Promise<ChildProcess | undefined> {
  const pid = node.pid();
  if (pid !== undefined) {
    say(`node ${node.name} already runs (pid ${pid}) but does not answer yet at 127.0.0.1:${node.ports.amqp}; waiting`);
    return undefined;
  }
  node.checkPorts();
  const { management, prometheus, distribution } = node.ports;
  const ports = [[management, "management"], [prometheus, "Prometheus"], [distribution, "Erlang distribution"]] as const;
  const inUse = await Promise.all(ports.map(([port]) => portInUse(port)));
  const busy = ports.filter((_, i) => inUse[i]).map(([port, what]) => `${port} (${what})`);
  if (busy.length > 0) {
    throw new WarrenError(`cannot start node ${node.name} on port ${node.ports.amqp}: already in use on 127.0.0.1: ${busy.join(", ")}. Pick another port with WARREN_BROKER_PORT, or free these ports.`);
  }
  node.prepare();
  say(`nothing answers at 127.0.0.1:${node.ports.amqp}: starting RabbitMQ node ${node.name}`);
  say(`  server: ${install.server}`);
  say(`  config: ${node.configFile}`);
  return node.launch(install);
}

/** Waits until the node answers; throws with its logs when it exits first or stays silent too long. */
async function awaitAnswer(node: LocalNode, child: ChildProcess | undefined): Promise<void> {
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
      `It may still be booting; stop it with \`${stopCommand(node)}\`.`,
  );
}

function printReady(node: LocalNode, t: BrokerTarget): void {
  const local = new URL(t.address);
  local.hostname = "127.0.0.1";
  local.port = String(node.ports.amqp);
  say(`AMQP address:  ${redactAddress(local.toString())} (node ${node.name})`);
  say(`management UI: http://127.0.0.1:${node.ports.management} (user ${t.user ?? "guest"}, the address's password)`);
  say(`Prometheus:    http://127.0.0.1:${node.ports.prometheus}/metrics`);
  say(`data and logs: ${STATE_DIR}`);
  say(`stop it with:  ${stopCommand(node)}`);
}

export async function start(): Promise<number> {
  const t = brokerTarget();
  const at = hostPort(t.host, t.port);
  const found = await probe(t.host, t.port);
  if (found === "amqp") {
    say(answer(found, at));
    return 0;
  }
  if (found !== "closed") throw new WarrenError(`${answer(found, at)}: point WARREN_ADDRESS (or WARREN_BROKER_PORT) at a RabbitMQ broker`);
  if (!isLocal(t.host)) {
    throw new WarrenError(`the remote broker at ${at} does not answer (WARREN_ADDRESS=${redactAddress(t.address)}): start it there, or point WARREN_ADDRESS at one that runs`);
  }
  if (t.scheme === "amqps") throw new WarrenError(`nothing answers at ${at}, and \`warren broker start\` only starts plain amqp:// brokers`);
  const install = findRabbitmq();
  if (install === undefined) throw notInstalled();

  const node = new LocalNode(t);
  await awaitAnswer(node, await launch(node, install));
  printReady(node, t);
  if (t.host !== "127.0.0.1" && (await probe(t.host, t.port)) !== "amqp") {
    console.error(`broker: warning: the broker answers at 127.0.0.1:${t.port} but not at ${at}`);
  }
  return 0;
}

export async function stop(): Promise<number> {
  const node = new LocalNode(brokerTarget());
  const pid = node.pid();
  if (pid === undefined) {
    say(`no project-local broker runs for port ${node.ports.amqp} (node ${node.name}); nothing to stop`);
    return 0;
  }
  const install = findRabbitmq();
  if (install === undefined) throw new WarrenError(`node ${node.name} runs (pid ${pid}) but rabbitmqctl was not found; stop it with \`kill ${pid}\``);
  say(`stopping RabbitMQ node ${node.name} (pid ${pid})`);
  if (!node.stopWithCtl(install)) {
    console.error(`broker: rabbitmqctl could not stop ${node.name}; sending SIGTERM to pid ${pid}`);
    if (!(await node.terminate(pid))) throw new WarrenError(`RabbitMQ node ${node.name} (pid ${pid}) still runs 30 s after SIGTERM; kill it with \`kill -9 ${pid}\``);
  }
  say("stopped");
  return 0;
}

export async function status(): Promise<number> {
  const t = brokerTarget();
  const node = new LocalNode(t);
  const found = await probe(t.host, t.port);
  say(answer(found, hostPort(t.host, t.port)));
  const pid = node.pid();
  const { amqp, management } = node.ports;
  say(pid === undefined
    ? `project-local node ${node.name} does not run`
    : `project-local node ${node.name} runs (pid ${pid}; AMQP 127.0.0.1:${amqp}, management http://127.0.0.1:${management}, logs ${node.logDir})`);
  return found === "amqp" ? 0 : 1;
}
