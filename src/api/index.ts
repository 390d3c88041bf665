/** The public functions of warren's core: objects (get, wait, put, cancel) and the runtime context. */
import { OptionsError, WarrenError } from "../errors";
import { ObjectRef } from "../objects/ref";
import { currentRuntime } from "../core/current";
import { taskContext } from "../core/context";

export { init, shutdown, isInitialized } from "./cluster";
export type { ClusterInfo } from "./cluster";
export { remote, RemoteFunction } from "./remote";
export { wasm } from "./wasm";
export type { WasmOptions, WasmExports } from "./wasm";
export type { RemoteArgs, ReturnRefs } from "../core/template";
export { Actor, actor, method, getActor, kill, exitActor } from "./actor";
export { ActorHandle, ActorMethod } from "../core/actor-handle";
export { nodes, clusterResources, availableResources, state } from "./state";
export type { NodeSummary, ListOptions, Filters, Predicate, TaskRow, TaskSummary, Gathered, JobRow } from "./state";
export type { TaskInfo } from "../wire/task-events";
export type { Resources } from "../scheduling/shape";
export { timeline } from "./timeline";
export type { TraceEvent } from "./timeline";
export type { ActorMethods } from "../core/actor-handle";

type Values<T extends readonly unknown[]> = { -readonly [K in keyof T]: T[K] extends ObjectRef<infer V> ? V : never };

/** The value of a ref, or of each ref of a list (in order). `timeout` in seconds: GetTimeoutError. */
export function get<T>(ref: ObjectRef<T>, options?: { timeout?: number }): Promise<T>;
export function get<T extends readonly ObjectRef<unknown>[]>(refs: T, options?: { timeout?: number }): Promise<Values<T>>;
export function get(refs: ObjectRef | readonly ObjectRef[], options: { timeout?: number } = {}): Promise<unknown> {
  try {
    const list = Array.isArray(refs) ? refs : [refs];
    for (const [i, r] of list.entries()) {
      if (!(r instanceof ObjectRef)) {
        throw new WarrenError(`get() takes ObjectRefs; ${Array.isArray(refs) ? `element ${i} is` : "got"} ${describe(r)}`);
      }
    }
    checkTimeout(options.timeout, "get");
    return Array.isArray(refs) ? currentRuntime().get(list as ObjectRef[], options.timeout) : currentRuntime().get([refs as ObjectRef], options.timeout, true);
  } catch (err) {
    return Promise.reject(err); // bad arguments reject, as from an async function
  }
}

let waitCalls = 0;

/**
 * Waits until `numReturns` (default 1) of `refs` are ready or `timeout` seconds pass; returns
 * `[ready, notReady]`, each in input order.
 */
export async function wait<T>(
  refs: readonly ObjectRef<T>[],
  options: { numReturns?: number; timeout?: number; fetchLocal?: boolean } = {},
): Promise<[ObjectRef<T>[], ObjectRef<T>[]]> {
  if (!Array.isArray(refs)) throw new WarrenError("wait() takes an array of ObjectRefs");
  const call = ++waitCalls;
  for (const r of refs) {
    if (!(r instanceof ObjectRef)) throw new WarrenError("wait() takes an array of ObjectRefs");
    if (!r.seenBy(call)) throw new WarrenError("wait() got the same ObjectRef twice; pass each ref once");
  }
  const numReturns = options.numReturns ?? 1;
  if (!Number.isInteger(numReturns) || numReturns < 0 || numReturns > refs.length) {
    throw new OptionsError("wait() options", [{ field: "numReturns", problem: `must be an integer from 0 to ${refs.length}, the number of refs (got ${numReturns})` }]);
  }
  checkTimeout(options.timeout, "wait");
  return (await currentRuntime().wait(refs as ObjectRef[], numReturns, options.timeout)) as [ObjectRef<T>[], ObjectRef<T>[]];
}

/** Stores a value in the object store and returns a ref to it at once. */
export function put<T>(value: T): ObjectRef<T> {
  if (value instanceof ObjectRef) throw new WarrenError("put() takes a value, not an ObjectRef (it is already in the store)");
  return currentRuntime().put(value) as ObjectRef<T>;
}

/**
 * Cancels the task that makes `ref`: `get` on it throws TaskCancelledError. A queued task never
 * runs; a running one is told (`getRuntimeContext().isCanceled()`), or killed with `force`.
 */
export async function cancel(ref: ObjectRef, options: { force?: boolean; recursive?: boolean } = {}): Promise<void> {
  if (!(ref instanceof ObjectRef)) throw new WarrenError(`cancel() takes an ObjectRef; got ${describe(ref)}`);
  currentRuntime().cancel(ref.taskId, options.force ?? false, options.recursive ?? true);
}

export interface RuntimeContext {
  jobId: string;
  nodeId: string;
  taskId: string | undefined;
  taskName: string | undefined;
  actorId: string | undefined;
  workerId: string;
  namespace: string;
  /** What the running task or actor holds, e.g. `{ CPU: 1, GPU: 1 }`; empty in a driver. */
  assignedResources: Record<string, number>;
  isCanceled(): boolean;
}

/** The GPU ids assigned to the running task or actor (its worker's CUDA_VISIBLE_DEVICES); [] elsewhere. */
export function getGpuIds(): number[] {
  void currentRuntime(); // the same "not initialized" error as everything else
  return [...(taskContext.getStore()?.gpuIds ?? [])];
}

export function getRuntimeContext(): RuntimeContext {
  const rt = currentRuntime();
  const ctx = taskContext.getStore();
  return {
    jobId: ctx?.jobId ?? rt.config.jobId,
    nodeId: rt.config.nodeId,
    taskId: ctx?.taskId,
    taskName: ctx?.taskName,
    actorId: ctx?.actorId,
    workerId: rt.config.ownerId,
    namespace: ctx?.namespace ?? rt.config.namespace,
    assignedResources: { ...(ctx?.resources ?? {}) },
    isCanceled: () => ctx?.canceled ?? false,
  };
}

function checkTimeout(timeout: unknown, fn: string): void {
  if (timeout !== undefined && (typeof timeout !== "number" || !(timeout >= 0))) {
    throw new OptionsError(`${fn}() options`, [{ field: "timeout", problem: `must be a number of seconds >= 0 (got ${String(timeout)})` }]);
  }
}

function describe(v: unknown): string {
  return v === null ? "null" : typeof v === "object" ? `a ${v.constructor?.name ?? "object"}` : `${typeof v} ${String(v)}`;
}
