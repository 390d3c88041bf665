/**
 * The project-local RabbitMQ node that `warren broker start` runs when nothing answers at a local
 * target: the installed RabbitMQ scripts it runs (Debian's /usr/lib/rabbitmq/bin first), its
 * environment and configuration (the project's rabbitmq.conf and broker/enabled_plugins), and its
 * data, logs and pid file under .warren/broker/ at the package root.
 *
 * One node per AMQP port: warren@localhost on 5672 with rabbitmq.conf's own ports, and
 * warren-PORT@localhost on any other port, whose management, Prometheus and Erlang distribution
 * ports are the AMQP port plus the offsets below (never AMQP port + 20000, the 25672 a system
 * broker on 5672 holds). The system's RabbitMQ settings (/etc/rabbitmq/rabbitmq-env.conf, conf.d,
 * advanced.config) are never read.
 *
 * A member of a local cluster (rabbitmq-cluster.ts) is the same node with its files in its own
 * folder of the cluster's folder, and HOME set to the cluster's home/, whose .erlang.cookie every
 * member and every rabbitmqctl call for it shares.
 *
 * Invariant: a pid is this node's only if that process's environment names the node
 * (RABBITMQ_NODENAME), so that a stale pid file never makes `stop` signal another process (on
 * Linux; without /proc a live pid is trusted, as for warren's own nodes).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { WarrenError } from "../errors";
import type { BrokerTarget } from "./broker-address";
import { PACKAGE_ROOT, nodeAlive } from "./common";

/** Where every project-local node keeps its data, logs, pid file and generated configuration. */
export const STATE_DIR = path.join(PACKAGE_ROOT, ".warren", "broker");
const PROJECT_CONF = path.join(PACKAGE_ROOT, "rabbitmq.conf");
const PLUGINS_FILE = path.join(PACKAGE_ROOT, "broker", "enabled_plugins");
const DEFAULT_PORT = 5672;
/** Ports of a node on an AMQP port other than 5672, as offsets from that port. */
const OFFSETS = { management: 10000, prometheus: 10020, distribution: 20010 };
/** The lines of rabbitmq.conf a node on another port gets with its own port substituted. */
const PORT_LINES = {
  amqp: /^(\s*listeners\.tcp\.default\s*=\s*127\.0\.0\.1:)5672\s*$/m,
  management: /^(\s*management\.tcp\.port\s*=\s*)15672\s*$/m,
  prometheus: /^(\s*prometheus\.tcp\.port\s*=\s*)15692\s*$/m,
};
/** Variables that would otherwise reach the node from the caller's environment, with or without the RABBITMQ_ prefix. */
const INHERITED = ["BASE", "MNESIA_DIR", "LOGS", "ENABLED_PLUGINS", "FEATURE_FLAGS", "FEATURE_FLAGS_FILE", "QUORUM_DIR", "STREAM_DIR", "USE_LONGNAME", "PLUGINS_EXPAND_DIR", "MOTD_FILE"];

export interface Installation {
  server: string;
  ctl: string;
}

// Debian's own scripts first: its /usr/sbin/rabbitmq-server is a wrapper that switches to the
// rabbitmq user, whose files a project-local node cannot use.
const DEBIAN_BIN = "/usr/lib/rabbitmq/bin";
const AFTER_PATH = ["/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin"];
const RABBITMQ_DIRS = [...new Set([DEBIAN_BIN, ...(process.env.PATH ?? "").split(path.delimiter).filter(Boolean), ...AFTER_PATH])];
/** Where findRabbitmq looks, in order, for people to read. */
export const RABBITMQ_SEARCHED = [DEBIAN_BIN, "$PATH", ...AFTER_PATH].join(", ");

function executable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

const firstIn = (dirs: string[], name: string) => dirs.map((d) => path.join(d, name)).find(executable);

/** The first rabbitmq-server found and its rabbitmqctl, or undefined when RabbitMQ is not installed. */
export function findRabbitmq(): Installation | undefined {
  const server = firstIn(RABBITMQ_DIRS, "rabbitmq-server");
  if (server === undefined) return undefined;
  const beside = path.join(path.dirname(server), "rabbitmqctl");
  return { server, ctl: executable(beside) ? beside : firstIn(RABBITMQ_DIRS, "rabbitmqctl") ?? beside };
}

/** Writes a new random Erlang cookie into `home` unless one is there, readable by its owner only (as Erlang demands). */
function writeCookie(home: string): void {
  const cookie = path.join(home, ".erlang.cookie");
  if (fs.existsSync(cookie)) return;
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  fs.writeFileSync(`${cookie}.tmp`, randomBytes(15).toString("hex").toUpperCase(), { mode: 0o400 });
  fs.renameSync(`${cookie}.tmp`, cookie);
}

export class LocalNode {
  /** The Erlang node name: warren@localhost, or warren-PORT@localhost. */
  readonly name: string;
  readonly ports: { amqp: number; management: number; prometheus: number; distribution: number };
  /** Where its data, logs, pid file and generated configuration live: STATE_DIR, or its own folder of a cluster's. */
  readonly dir: string;
  /** The HOME it and rabbitmqctl run with (the Erlang cookie's folder): the caller's, or the cluster's home/. */
  readonly home: string | undefined;
  readonly pidFile: string;
  readonly logDir: string;
  readonly startupLog: string;
  readonly logFile: string;
  /** rabbitmq.conf itself on 5672, a copy with this node's ports elsewhere. */
  readonly configFile: string;

  /** `clusterDir`: the folder of the local cluster this node is a member of, if any. */
  constructor(readonly target: BrokerTarget, clusterDir?: string) {
    const port = target.port;
    const standard = port === DEFAULT_PORT;
    this.name = standard ? "warren@localhost" : `warren-${port}@localhost`;
    this.ports = {
      amqp: port,
      management: standard ? 15672 : port + OFFSETS.management,
      prometheus: standard ? 15692 : port + OFFSETS.prometheus,
      distribution: port + OFFSETS.distribution,
    };
    this.dir = clusterDir === undefined ? STATE_DIR : path.join(clusterDir, this.name);
    this.home = clusterDir === undefined ? undefined : path.join(clusterDir, "home");
    this.pidFile = path.join(this.dir, `${this.name}.pid`);
    this.logDir = path.join(this.dir, "log");
    this.startupLog = path.join(this.logDir, `${this.name}.startup.log`);
    this.logFile = path.join(this.logDir, `${this.name}.log`);
    this.configFile = standard ? PROJECT_CONF : path.join(this.dir, `rabbitmq-${port}.conf`);
  }

  /** The pid of this node's Erlang VM if it runs. */
  pid(): number | undefined {
    let text: string;
    try {
      text = fs.readFileSync(this.pidFile, "utf8").trim();
    } catch {
      return undefined;
    }
    const pid = Number(text);
    return /^\d+$/.test(text) && nodeAlive({ pid, nodeId: `RABBITMQ_NODENAME=${this.name}` }) ? pid : undefined;
  }

  /** Throws when one of the node's ports would exceed 65535. */
  checkPorts(): void {
    const { amqp, prometheus, distribution } = this.ports;
    if (prometheus > 65535 || distribution > 65535) {
      throw new WarrenError(`port ${amqp} is too high for a project-local broker: its Prometheus port (${prometheus}) or Erlang distribution port (${distribution}) would exceed 65535; pick a lower WARREN_BROKER_PORT`);
    }
  }

  /**
   * Writes the node's folder, the empty rabbitmq-env.conf that stands in for the system's, a
   * cluster's Erlang cookie when its home has none yet, and on a port other than 5672 this node's
   * copy of rabbitmq.conf. Throws when rabbitmq.conf lost a line whose port is substituted.
   */
  prepare(): void {
    fs.mkdirSync(path.join(this.dir, "mnesia"), { recursive: true });
    fs.mkdirSync(this.logDir, { recursive: true });
    if (this.home !== undefined) writeCookie(this.home);
    const envFile = path.join(this.dir, "rabbitmq-env.conf");
    if (!fs.existsSync(envFile)) {
      fs.writeFileSync(envFile, "# Written by `warren broker start`: stands in for /etc/rabbitmq/rabbitmq-env.conf, whose NODENAME\n# and ERL flags must not apply to the project-local broker. Everything is set through RABBITMQ_* variables.\n");
    }
    if (this.configFile === PROJECT_CONF) return;
    let conf = fs.readFileSync(PROJECT_CONF, "utf8");
    for (const [port, line] of Object.entries(PORT_LINES) as Array<[keyof typeof PORT_LINES, RegExp]>) {
      if (!line.test(conf)) {
        throw new WarrenError(`cannot start a broker on port ${this.ports.amqp}: ${PROJECT_CONF} has no line matching ${line.source} to give it port ${this.ports[port]} (keep its listeners.tcp.default, management.tcp.port and prometheus.tcp.port lines as they are)`);
      }
      conf = conf.replace(line, `$1${this.ports[port]}`);
    }
    fs.writeFileSync(`${this.configFile}.tmp`, conf);
    fs.renameSync(`${this.configFile}.tmp`, this.configFile);
  }

  /** The environment the node and rabbitmqctl run with: every RABBITMQ_* setting that matters, ours. */
  env(): NodeJS.ProcessEnv {
    const env = { ...process.env };
    for (const v of INHERITED) {
      delete env[v];
      delete env[`RABBITMQ_${v}`];
    }
    const { user, password, vhost } = this.target;
    return {
      ...env,
      ...(this.home !== undefined && { HOME: this.home }),
      RABBITMQ_CONF_ENV_FILE: path.join(this.dir, "rabbitmq-env.conf"),
      RABBITMQ_NODENAME: this.name,
      RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
      RABBITMQ_NODE_PORT: String(this.ports.amqp),
      RABBITMQ_DIST_PORT: String(this.ports.distribution),
      RABBITMQ_CONFIG_FILE: this.configFile,
      RABBITMQ_CONFIG_FILES: path.join(this.dir, "conf.d", "*.conf"),
      RABBITMQ_ADVANCED_CONFIG_FILE: path.join(this.dir, "advanced.config"),
      RABBITMQ_ENABLED_PLUGINS_FILE: PLUGINS_FILE,
      RABBITMQ_MNESIA_BASE: path.join(this.dir, "mnesia"),
      RABBITMQ_LOG_BASE: this.logDir,
      RABBITMQ_PID_FILE: this.pidFile,
      // epmd, started by the first node when none runs, listens on loopback too.
      ERL_EPMD_ADDRESS: env.ERL_EPMD_ADDRESS ?? "127.0.0.1",
      // A fresh node's default user and vhost: the ones the address names, if any.
      ...(user !== undefined && { RABBITMQ_DEFAULT_USER: user }),
      ...(password !== undefined && { RABBITMQ_DEFAULT_PASS: password }),
      ...(vhost !== undefined && { RABBITMQ_DEFAULT_VHOST: vhost }),
    };
  }

  /**
   * Starts the node detached (its own session, output to the startup log), so that it outlives
   * the npm, jest or CI process that started it. Call prepare() first.
   */
  launch(install: Installation): ChildProcess {
    fs.rmSync(this.pidFile, { force: true });
    const log = fs.openSync(this.startupLog, "w");
    const child = spawn(install.server, [], { cwd: this.dir, env: this.env(), detached: true, stdio: ["ignore", log, log] });
    fs.closeSync(log);
    child.unref();
    return child;
  }

  /** Runs `rabbitmqctl -q -n NODE ...args` for this node; its output comes back, trimmed, whether it failed or not. */
  ctl(install: Installation, ...args: string[]): { ok: boolean; output: string } {
    const r = spawnSync(install.ctl, ["-q", "-n", this.name, ...args], { env: this.env(), encoding: "utf8", timeout: 120_000 });
    return { ok: r.status === 0, output: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() || (r.error?.message ?? "") };
  }

  /** Stops the node with `rabbitmqctl stop`, which waits until it has exited; false if rabbitmqctl failed. */
  stopWithCtl(install: Installation): boolean {
    const r = spawnSync(install.ctl, ["-q", "-n", this.name, "stop", this.pidFile], { env: this.env(), stdio: ["ignore", "inherit", "inherit"], timeout: 120_000 });
    return r.status === 0;
  }

  /** Sends SIGTERM to the node's VM and waits up to 30 s for it to exit; false if it still runs. */
  async terminate(pid: number): Promise<boolean> {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // gone meanwhile
    }
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && this.pid() === pid) await sleep(500);
    return this.pid() !== pid;
  }

  /** The last lines of the node's startup log and log, indented, for a message saying why it failed. */
  logTail(): string {
    return [this.startupLog, this.logFile]
      .filter((f) => fs.existsSync(f) && fs.statSync(f).size > 0)
      .map((f) => {
        const lines = fs.readFileSync(f, "utf8").trimEnd().split("\n").slice(-20);
        return `last lines of ${f}:\n${lines.map((l) => `    ${l.slice(0, 300)}`).join("\n")}`;
      })
      .join("\n");
  }
}
