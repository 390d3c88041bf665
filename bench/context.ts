/**
 * What the cases share: the echo server of the raw limits and the warren cluster, each started
 * by the first case that asks for it and closed once at the end of the run, and the driver's
 * garbage collector (`gc`, run between cases).
 */
import * as v8 from "node:v8";
import * as vm from "node:vm";
import * as warren from "warren";
import { Echo } from "./limits";

export class Context {
  private echoP?: Promise<Echo>;
  private warrenP?: Promise<warren.ClusterInfo>;
  readonly gc: () => void = exposeGc();

  echo(): Promise<Echo> {
    return (this.echoP ??= Echo.start());
  }

  warren(): Promise<warren.ClusterInfo> {
    return (this.warrenP ??= warren.init());
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
