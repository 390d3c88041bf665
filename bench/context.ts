/**
 * What the cases share: the echo server of the raw limits and the warren cluster, each started
 * by the first case that asks for it and closed once at the end of the run, and the driver's
 * garbage collector (`gc`, run between cases), and a second node for the cross-node case, started
 * with `warren start` (no CPUs, custom resource FAR_NODE) and stopped with `warren stop`. In durable mode (`--durable`) both run on the
 * benchmark's 3-node RabbitMQ cluster: warren with init({ durable: true }), the echo on a quorum
 * queue with confirms.
 */
import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import * as amqp from "amqplib";
import * as warren from "warren";
import { Echo } from "./limits";

const CLI = path.join(__dirname, "..", "dist", "src", "cli", "main.js");
const run = promisify(execFile);
/** The custom resource of the second node. */
export const FAR_NODE = "bench_far";

export class Context {
  /** The broker address: WARREN_ADDRESS (or the local default), or the durable cluster's URLs. */
  constructor(private readonly address = process.env.WARREN_ADDRESS ?? "amqp://guest:guest@127.0.0.1:5672", readonly durable = false) {}

  private echoP?: Promise<Echo>;
  private warrenP?: Promise<warren.ClusterInfo>;
  private farP?: Promise<string>;
  private bareP?: Promise<amqp.ChannelModel>;
  readonly gc: () => void = exposeGc();

  echo(): Promise<Echo> {
    return (this.echoP ??= Echo.start(this.address, this.durable));
  }

  /** A channel on a bare amqplib connection of its own (the raw queue limit's), nothing of warren's on it. */
  async bareChannel(): Promise<amqp.Channel> {
    const conn = await (this.bareP ??= amqp.connect(this.address.split(",")[0], { clientProperties: { connection_name: "warren bench bare" } }));
    return conn.createChannel();
  }

  warren(): Promise<warren.ClusterInfo> {
    return (this.warrenP ??= warren.init(this.durable ? { address: this.address, durable: true } : {}));
  }

  /** Adds a second node to the cluster (once); resolves with the cluster's name. */
  farNode(): Promise<string> {
    return (this.farP ??= this.warren().then(async ({ address, cluster }) => {
      await run(process.execPath, [CLI, "start", "--address", address, "--cluster", cluster, "--num-cpus", "0", "--resources", JSON.stringify({ [FAR_NODE]: 1 })]);
      return cluster;
    }));
  }

  async cluster(): Promise<warren.ClusterInfo | undefined> {
    return this.warrenP?.catch(() => undefined);
  }

  async close(): Promise<void> {
    const echo = await this.echoP?.catch(() => undefined);
    this.echoP = undefined;
    await echo?.close();
    const bare = await this.bareP?.catch(() => undefined);
    this.bareP = undefined;
    await bare?.close();
    const far = await this.farP?.catch(() => undefined);
    this.farP = undefined;
    if (far) await run(process.execPath, [CLI, "stop", "--cluster", far]);
    if (this.warrenP) {
      this.warrenP = undefined;
      await warren.shutdown();
    }
  }

  /** For a signal: no waiting on anything. */
  killNow(): void {
    void this.echoP?.then((e) => e.kill(), () => undefined);
  }
}

function exposeGc(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === "function") return g;
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc");
}
