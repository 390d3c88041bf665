/**
 * core: the process's runtime, once `init()` (or a worker's start) made one: Ray's global worker.
 * Kept apart from runtime.ts so that what the runtime's parts import (actor handles) can reach
 * it without an import cycle.
 */
import { WarrenError } from "../errors";
import type { Runtime } from "./runtime";

let active: Runtime | undefined;

export function currentRuntime(): Runtime {
  if (!active) throw new WarrenError("warren is not initialized: call `await warren.init()` first");
  return active;
}

export function hasRuntime(): boolean {
  return active !== undefined;
}

/** Makes `rt` the process's runtime, or, with `ended`, stops it being so if it still is. */
export function setRuntime(rt: Runtime, ended = false): void {
  if (!ended) active = rt;
  else if (active === rt) active = undefined;
}
