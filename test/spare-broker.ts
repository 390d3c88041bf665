// A RabbitMQ node of the tests' own on a spare port, started, stopped and killed through
// `warren broker` (the built CLI), so that fault tests never touch the shared broker on 5672.
import * as fs from "node:fs";
import * as path from "node:path";
import { execFile } from "node:child_process";
import { processesWith } from "./helpers";

const ROOT = path.join(__dirname, "..");
export const CLI = path.join(ROOT, "dist", "src", "cli", "main.js");
export const STATE_DIR = path.join(ROOT, ".warren", "broker");

export interface Run {
  code: number;
  output: string;
}

/** Runs `warren broker ...args` with only the given WARREN_* variables; never rejects. */
export function brokerCli(env: { WARREN_ADDRESS?: string; WARREN_BROKER_PORT?: string }, ...args: string[]): Promise<Run> {
  const base = { ...process.env };
  delete base.WARREN_ADDRESS;
  delete base.WARREN_BROKER_PORT;
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, "broker", ...args], { env: { ...base, ...env }, timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, output: stdout + stderr }));
  });
}

export class SpareBroker {
  readonly node: string;
  readonly address: string;
  private readonly env: { WARREN_ADDRESS: string; WARREN_BROKER_PORT: string };

  constructor(readonly port: number) {
    this.node = `warren-${port}@localhost`;
    this.address = `amqp://guest:guest@127.0.0.1:${port}`;
    this.env = { WARREN_ADDRESS: this.address, WARREN_BROKER_PORT: String(port) };
  }

  /** Starts the node (keeping its data: a restart finds its durable queues) and waits until it answers. */
  async start(): Promise<void> {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before these tests`);
    const r = await brokerCli(this.env, "start");
    if (r.code !== 0) throw new Error(`could not start the broker on ${this.port}:\n${r.output}`);
  }

  /** Stops it gracefully (rabbitmqctl stop). */
  async stop(): Promise<void> {
    const r = await brokerCli(this.env, "stop");
    if (r.code !== 0) throw new Error(`could not stop the broker on ${this.port}:\n${r.output}`);
  }

  /** SIGKILLs every process of the node, as a crash would. */
  kill(): void {
    for (const pid of this.processes()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
  }

  /** The node's processes (the shared epmd, which its VM may have started, is left alone). */
  processes(): number[] {
    return processesWith(`RABBITMQ_NODENAME=${this.node}`).filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim() !== "epmd";
      } catch {
        return false;
      }
    });
  }

  /** Kills the node and removes its files under .warren/broker/ (nothing of other nodes). */
  remove(): void {
    this.kill();
    fs.rmSync(path.join(STATE_DIR, `${this.node}.pid`), { force: true });
    fs.rmSync(path.join(STATE_DIR, `rabbitmq-${this.port}.conf`), { force: true });
    for (const dir of ["log", "mnesia"].map((d) => path.join(STATE_DIR, d)).filter((d) => fs.existsSync(d))) {
      for (const entry of fs.readdirSync(dir).filter((e) => e.startsWith(this.node))) fs.rmSync(path.join(dir, entry), { recursive: true, force: true });
    }
  }
}

/** A local RabbitMQ cluster of `size` nodes on ports `port`.. (`warren broker start --nodes`). */
export class SpareCluster {
  readonly members: SpareBroker[];
  /** Every node's URL, the first first: the list processes are given, and try in turn. */
  readonly address: string;
  private readonly env: { WARREN_ADDRESS: string; WARREN_BROKER_PORT: string };

  constructor(readonly port: number, readonly size: number) {
    this.members = Array.from({ length: size }, (_, i) => new SpareBroker(port + i));
    this.address = this.members.map((m) => m.address).join(",");
    this.env = { WARREN_ADDRESS: this.members[0].address, WARREN_BROKER_PORT: String(port) };
  }

  /** Starts every node not running (a member started again rejoins), and waits until all answer. */
  async start(): Promise<void> {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before these tests`);
    const r = await brokerCli(this.env, "start", "--nodes", String(this.size));
    if (r.code !== 0) throw new Error(`could not start the ${this.size}-node cluster on ${this.port}:\n${r.output}`);
  }

  /** Kills every node and removes the cluster's folder. */
  remove(): void {
    for (const m of this.members) m.kill();
    fs.rmSync(path.join(STATE_DIR, `cluster-${this.port}`), { recursive: true, force: true });
  }
}
