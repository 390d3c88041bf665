/**
 * What the cases share: the echo server of the raw limits and the warren cluster, each started
 * by the first case that asks for it and closed once at the end of the run, and the driver's
 * garbage collector (`gc`, run between cases). In durable mode (`--durable`) both run on the
 * benchmark's 3-node RabbitMQ cluster: warren with init({ durable: true }), the echo on a quorum
 * queue with confirms.
 */
import * as v8 from "node:v8";
import * as vm from "node:vm";
import * as warren from "warren";
import { Echo } from "./limits";

export class Context {
  /** The broker address: WARREN_ADDRESS (or the local default), or the durable cluster's URLs. */
  constructor(private readonly address = process.env.WARREN_ADDRESS ?? "amqp://guest:guest@127.0.0.1:5672", readonly durable = false) {}

  private echoP?: Promise<Echo>;
  private warrenP?: Promise<warren.ClusterInfo>;
  readonly gc: () => void = exposeGc();

  echo(): Promise<Echo> {
    return (this.echoP ??= Echo.start(this.address, this.durable));
  }

  warren(): Promise<warren.ClusterInfo> {
    return (this.warrenP ??= warren.init(this.durable ? { address: this.address, durable: true } : {}));
  }

  async cluster(): Promise<warren.ClusterInfo | undefined> {
    return this.warrenP?.catch(() => undefined);
  }

  async close(): Promise<void> {
    const echo = await this.echoP?.catch(() => undefined);
    this.echoP = undefined;
    await echo?.close();
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
