/**
 * Running one task or actor call in a worker, and answering its owner.
 *
 * A call whose arguments are all at hand and whose function returns a plain value runs and is
 * answered in one go, without a promise in between: on a sync round trip every microtask and
 * allocation here is paid with the caches cold, and a burst of short tasks runs in one loop.
 * Only a call that waits (ref arguments to fetch, an async function, actors its return value
 * creates) goes through promises.
 */
import { TaskError, WarrenError } from "../errors";
import { encode, encodeError, hasMarkers, revive } from "../serialization";
import { ObjectRef } from "../objects/ref";
import { objectId, ownerOf } from "../wire/ids";
import type { StoredObject } from "../wire/messages";
import { Kind } from "../wire/kinds";
import { publishSmall } from "../transport/frames";
import { load } from "../core/functions";
import { currentRuntime } from "../core/current";
import { TaskContext, taskContext } from "../core/context";
import { nowMs } from "../core/task-events";
import { ResultMessage, TaskSpec, encodeResults } from "../wire/messages";
import { flushOutput } from "./output";
import { RecentResults } from "./recent-results";
import { WORKER_DEFAULTS } from "./defaults";
import { taskEnded, taskStarted } from "./tally";

export type MaybePromise<T> = T | Promise<T>;

/** `f(v)`, at once if `v` is a value, after it if it is a promise. */
export function andThen<T, U>(v: MaybePromise<T>, f: (value: T) => MaybePromise<U>): MaybePromise<U> {
  return v instanceof Promise ? v.then(f) : f(v);
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === "object" || typeof v === "function") && typeof (v as PromiseLike<unknown>).then === "function";
}

/**
 * Runs one task or actor call in its context: resolves its ref arguments, calls, and encodes the
 * return values or the error, with the borrowed refs it still holds (core/objects.ts), noting its
 * run's start and end in the task events and in the worker's tally (metrics). Shared by tasks and
 * actor methods.
 */
export function execute(spec: TaskSpec, ctx: TaskContext, call: (args: unknown[]) => unknown): MaybePromise<ResultMessage> {
  const events = currentRuntime().events;
  ctx.startMs = nowMs();
  events.run(ctx);
  taskStarted(spec.name);
  return andThen(run(spec, ctx, call), (r) => {
    ctx.endMs = nowMs();
    ctx.error = r.error;
    events.run(ctx);
    taskEnded(spec.name, r.error !== undefined);
    return r;
  });
}

function run(spec: TaskSpec, ctx: TaskContext, call: (args: unknown[]) => unknown): MaybePromise<ResultMessage> {
  let loans: string[] | undefined;
  const ended = (result: ResultMessage): ResultMessage => {
    if (loans) currentRuntime().objects.reportHeld(result, loans);
    return result;
  };
  const failed = (err: unknown): ResultMessage => {
    const stack = err instanceof Error ? err.stack ?? String(err) : String(err);
    return ended({ task: spec.id, error: encodeError(new TaskError(spec.name, process.pid, currentRuntime().config.nodeId, stack, err)) });
  };
  const answer = (value: unknown) => andThen(storeReturns(spec, value), (returns) => ended({ task: spec.id, returns }));
  try {
    // Load the defining module first: it may register revivals its arguments need (warren/actors' Queue).
    const loading = load(spec.fn);
    if (loading) return loading.then(() => run(spec, ctx, call), failed);
    const args = spec.markers ? (revive(spec.args) as unknown[]) : spec.args;
    if (spec.markers) loans = currentRuntime().objects.borrowArgs(args, spec.id, spec.refArgs);
    const value = taskContext.run(ctx, () => (spec.refArgs.length === 0 ? call(args) : resolveArgs(spec, args).then(call)));
    if (!isThenable(value)) {
      const result = answer(value);
      return result instanceof Promise ? result.catch(failed) : result;
    }
    return Promise.resolve(value).then(answer).catch(failed);
  } catch (err) {
    return failed(err);
  }
}

async function resolveArgs(spec: TaskSpec, args: unknown[]): Promise<unknown[]> {
  const rt = currentRuntime();
  for (const i of spec.refArgs) {
    const known = spec.resolved[i];
    args[i] = known ? await rt.objects.materialize(known, (args[i] as ObjectRef).hex()) : (await rt.get([args[i] as ObjectRef]))[0];
  }
  return args;
}

/**
 * Encodes a task's return value(s): inline when small, into the node's store when large. Waits
 * only when a value holds handles of actors it created, whose mailboxes must exist first.
 */
function storeReturns(spec: TaskSpec, value: unknown): MaybePromise<StoredObject[]> {
  let values: unknown[];
  if (spec.numReturns === 1) values = [value];
  else if (spec.numReturns === 0) values = [];
  else {
    if (!Array.isArray(value) || value.length !== spec.numReturns) {
      throw new WarrenError(
        `${spec.name} was called with numReturns: ${spec.numReturns} but returned ` +
          (Array.isArray(value) ? `an array of ${value.length}` : typeof value) +
          `; return an array of exactly ${spec.numReturns} values`,
      );
    }
    values = value;
  }
  const rt = currentRuntime();
  const encoded = values.map((v, i) => encode(v, `return value ${i} of ${spec.name}`));
  const waits = values.flatMap((v, i) => (hasMarkers(encoded[i]) ? rt.objects.escape(v) : []));
  const store = () => encoded.map((bytes, i) => rt.objects.storeValue(objectId(spec.id, i + 1), bytes));
  return waits.length === 0 ? store() : Promise.all(waits).then(store);
}

// ---- results --------------------------------------------------------------------------------

/**
 * Sends a result to the task's owner, after the output the task printed. Results wait for the end
 * of this tick, so a burst of short tasks answers each owner in one message; they still leave in
 * the same write as the acks of their deliveries (the connection writes once per tick).
 */
const outgoing = new Map<string, ResultMessage[]>();
export function publishResult(result: ResultMessage): void {
  if (currentRuntime().topo.durable) recentResults.keep(result);
  sendResult(result);
}

/** In durable mode, the results sent lately, sent again when their owner asks (an outage took its inbox). */
const recentResults = new RecentResults(WORKER_DEFAULTS.recentResults);

export function sendResultsAgain(tasks: string[]): void {
  for (const result of recentResults.of(tasks)) sendResult(result);
}

function sendResult(result: ResultMessage): void {
  const inbox = currentRuntime().topo.inbox(ownerOf(result.task));
  const batch = outgoing.get(inbox);
  if (batch) return void batch.push(result);
  if (outgoing.size === 0) process.nextTick(flushResults);
  outgoing.set(inbox, [result]);
}

function flushResults(): void {
  flushOutput(); // what the tasks printed reaches the driver first
  const rt = currentRuntime();
  for (const [inbox, results] of outgoing) publishSmall(rt.ch, "", inbox, encodeResults(results), { type: Kind.result });
  outgoing.clear();
}

// ---- the process title ----------------------------------------------------------------------

let title = "";

/** Titles the process `warren::<name>` (Ray's `ray::name`) while a task runs; a change is a syscall. */
export function showTitle(name: string): void {
  const t = `warren::${name}`;
  if (t !== title) process.title = title = t;
}
