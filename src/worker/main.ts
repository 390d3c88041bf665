/**
 * worker: the process that runs user code. A node forks it, hands it tasks over IPC, and reuses
 * it across tasks. It loads user modules by path (TypeScript through tsx), publishes results
 * straight to the owner's inbox (one broker hop, not back through the node), sends its output to
 * the driver of the task's job, and is itself an owner for the tasks it submits.
 */
import { BoundedSet } from "../bounded";
import { register as registerTypeScript } from "tsx/cjs/api";
import { TaskError, WarrenError } from "../errors";
import { encode, encodeError, hasMarkers, revive } from "../serialization";
import { ObjectRef, newOwnerId, objectId } from "../objects/ref";
import type { StoredObject } from "../objects/owner";
import { Kind, watchChannel } from "../transport";
import { resolve } from "../api/registry";
import { Runtime, TaskContext, taskContext } from "../api/runtime";
import { ActorCreation, ResultMessage, TaskSpec, encodeResults, readTask } from "../serialization/messages";
import { ActorHost } from "./actor-host";
import { Lease } from "./lease";
import { nextAttempt, onRedelivery, publishAgain } from "../scheduling/retry";
import type * as amqp from "amqplib";
import { LONG_TASK_MS, type NodeToWorker, type WorkerConfig, type WorkerToNode } from "./protocol";

const config: WorkerConfig = JSON.parse(process.env.WARREN_WORKER ?? "null");
if (!config) {
  console.error("warren worker: started without WARREN_WORKER; workers are started by a warren node");
  process.exit(2);
}
registerTypeScript();
process.title = "warren::IDLE";

let rt: Runtime;
const running = new Map<string, TaskContext>();
/** Tasks cancelled anywhere in the cluster (forwarded by the node), for deliveries still to come. */
const cancelled = new BoundedSet<string>(100_000);
/** The channel a lease consumes on (one per worker, reused), the lease, and the leased task running. */
let leaseCh: amqp.Channel;
let lease: Lease | undefined;
let leased: { taskId: string; delivery: amqp.ConsumeMessage; acked: boolean } | undefined;
/** Set when a force-cancel ends this worker: its lease channel closes on purpose. */
let forceExiting = false;

function send(msg: WorkerToNode): void {
  process.send?.(msg);
}

async function main(): Promise<void> {
  rt = await Runtime.start({
    address: config.address,
    cluster: config.cluster,
    ownerId: newOwnerId(),
    nodeId: config.nodeId,
    storePath: config.storePath,
    jobId: "",
    namespace: "",
    logToDriver: false,
    role: "worker",
  });
  let blocked = 0;
  rt.blockHooks = {
    block: () => {
      if (blocked++ > 0) return;
      void lease?.suspend();
      send({ t: "blocked" });
    },
    unblock: () => {
      if (--blocked > 0) return;
      void lease?.resume();
      send({ t: "unblocked" });
    },
  };
  leaseCh = await rt.conn.createChannel();
  watchChannel(leaseCh, (reason) => forceExiting || rt.channelLost(reason));
  rt.runningRows = () => [...running.values()].map((c) => ({
    task_id: c.taskId, state: blocked > 0 ? "RUNNING_IN_GET" : "RUNNING", node_id: config.nodeId, worker_pid: process.pid, running: true,
  }));
  forwardOutput();
  process.on("message", (m: NodeToWorker) => {
    if (m.t === "task") void runTask(m);
    else if (m.t === "cancel") void cancel(m.task, m.force, m.recursive);
    else if (m.t === "ack-long" && leased?.taskId === m.task && !leased.acked) {
      leased.acked = true;
      leaseCh.ack(leased.delivery);
    }
  });
  process.on("disconnect", () => process.exit(0));
  send({ t: "ready", pid: process.pid });
}

async function runTask(m: Extract<NodeToWorker, { t: "task" }>): Promise<void> {
  const { tag, attempt, gpuIds, resources } = m;
  const spec = readTask(m.body);
  setVisibleGpus(gpuIds);
  if (spec.actor?.create) return becomeActor(spec, spec.actor.create, gpuIds, resources);
  const { result, retry } = await runSpec(spec, gpuIds, resources, attempt);
  if (!retry) publishResult(result);
  send({ t: "done", tag, retry });
  // With a lease, go on taking this shape's tasks from the broker directly (node/daemon.ts).
  if (m.lease) {
    lease = new Lease(leaseCh, m.lease.queue, (d) => runLeased(d, gpuIds, resources), () => {
      lease = undefined;
      send({ t: "lease-returned" });
    });
    await lease.start();
  }
}

/**
 * A task of the leased shape, delivered to this worker: run it and answer. Returns whether the
 * delivery is still to be acked (the lease acks in batches), not when it was acked early as long.
 */
async function runLeased(d: amqp.ConsumeMessage, gpuIds: number[], resources: Record<string, number>): Promise<boolean> {
  const h = d.properties.headers ?? {};
  const taskId: string = d.properties.messageId;
  if (cancelled.has(taskId)) return true;
  if (d.fields.redelivered) {
    // The worker or node that held it died: that was an attempt (scheduling/retry.ts).
    const r = onRedelivery(d);
    if (r.publish) publishAgain(leaseCh, d, r.headers);
    else publishResult({ task: taskId, error: encodeError(r.error) });
    return true;
  }
  const spec = readTask(d.content);
  leased = { taskId, delivery: d, acked: false };
  const long = setTimeout(() => send({ t: "long", task: taskId }), LONG_TASK_MS);
  const { result, retry } = await runSpec(spec, gpuIds, resources, h.attempt ?? 0);
  clearTimeout(long);
  if (retry) publishAgain(leaseCh, d, nextAttempt(h));
  else publishResult(result);
  const acked = leased.acked;
  if (acked) send({ t: "long-done", task: taskId });
  leased = undefined;
  return !acked;
}

/** Runs a task's function; `retry` when it threw and retryExceptions allows another attempt. */
async function runSpec(spec: TaskSpec, gpuIds: number[], resources: Record<string, number>, attempt: number): Promise<{ result: ResultMessage; retry: boolean }> {
  const ctx: TaskContext = { taskId: spec.id, taskName: spec.name, logName: spec.name, jobId: spec.job, namespace: spec.namespace, canceled: false, gpuIds, resources };
  running.set(spec.id, ctx);
  const title = `warren::${spec.name}`;
  if (process.title !== title) process.title = title;
  const result = await execute(spec, ctx, (args) => {
    const fn = resolve(spec.fn);
    if (typeof fn !== "function") throw new WarrenError(`${spec.name} is not a function in ${spec.fn.module}`);
    return fn(...args);
  });
  running.delete(spec.id);
  idleTitleSoon();
  const retry = result.error !== undefined && spec.retryExceptions && !ctx.canceled && (spec.maxRetries < 0 || attempt < spec.maxRetries);
  return { result, retry };
}

/**
 * Runs one task or actor call in its context: resolves its ref arguments, calls, and encodes the
 * return values or the error. Shared by tasks and actor methods.
 */
export async function execute(spec: TaskSpec, ctx: TaskContext, call: (args: unknown[]) => unknown): Promise<ResultMessage> {
  let result: ResultMessage;
  try {
    // Load the defining module first: it may register revivals its arguments need (warren/actors' Queue).
    resolve(spec.fn);
    const value = await taskContext.run(ctx, async () => call(await resolveArgs(spec)));
    result = { task: spec.id, returns: await storeReturns(spec, value) };
  } catch (err) {
    const stack = err instanceof Error ? err.stack ?? String(err) : String(err);
    result = { task: spec.id, error: encodeError(new TaskError(spec.name, process.pid, config.nodeId, stack, err)) };
  }
  return result;
}

/**
 * Sends a result to the task's owner, after the output the task printed. Results wait for the end
 * of this tick, so a burst of short tasks answers each owner in one message; they still leave in
 * the same write as the acks of their deliveries (amqplib writes once per event-loop turn).
 */
const outgoing = new Map<string, ResultMessage[]>();
export function publishResult(result: ResultMessage): void {
  const inbox = rt.topo.inbox(result.task.slice(0, 16));
  const batch = outgoing.get(inbox);
  if (batch) return void batch.push(result);
  if (outgoing.size === 0) process.nextTick(flushResults);
  outgoing.set(inbox, [result]);
}

function flushResults(): void {
  flushOutput();
  for (const [inbox, results] of outgoing) rt.ch.publish("", inbox, encodeResults(results), { type: Kind.result });
  outgoing.clear();
}

/** Titles the process IDLE unless another task starts first (a title change is a syscall). */
let idleTitle: NodeJS.Immediate | undefined;
function idleTitleSoon(): void {
  idleTitle ??= setImmediate(() => {
    idleTitle = undefined;
    if (running.size === 0) process.title = "warren::IDLE";
  });
}

/** A GPU task's worker sees only its GPUs; other tasks see what the node was started with. */
const inheritedGpus = process.env.CUDA_VISIBLE_DEVICES;
function setVisibleGpus(ids: number[]): void {
  if (ids.length > 0) process.env.CUDA_VISIBLE_DEVICES = ids.join(",");
  else if (inheritedGpus === undefined) delete process.env.CUDA_VISIBLE_DEVICES;
  else process.env.CUDA_VISIBLE_DEVICES = inheritedGpus;
}

async function resolveArgs(spec: TaskSpec): Promise<unknown[]> {
  const args = (spec.markers ? revive(spec.args) : spec.args) as unknown[];
  for (const i of spec.refArgs) {
    const known = spec.resolved[i];
    args[i] = known ? await rt.materialize(known, (args[i] as ObjectRef).hex()) : (await rt.get([args[i] as ObjectRef]))[0];
  }
  return args;
}

/** Encodes a task's return value(s): inline when small, into the node's store when large. */
async function storeReturns(spec: TaskSpec, value: unknown): Promise<StoredObject[]> {
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
  const stored: StoredObject[] = [];
  for (const [i, v] of values.entries()) {
    const bytes = encode(v, `return value ${i} of ${spec.name}`);
    if (hasMarkers(bytes)) await Promise.all(rt.escape(v)); // actors it created must have a mailbox first
    stored.push(rt.storeValue(objectId(spec.id, i + 1), bytes));
  }
  return stored;
}

/** Runs an actor's constructor; on success this worker hosts the actor until it dies. */
async function becomeActor(spec: TaskSpec, create: ActorCreation, gpuIds: number[], resources: Record<string, number>): Promise<void> {
  const info = create.handle;
  const ctx: TaskContext = { taskId: spec.id, taskName: spec.name, logName: info.className, jobId: spec.job, namespace: spec.namespace, actorId: info.id, canceled: false, gpuIds, resources };
  process.title = `warren::${info.className}`;
  let instance: object | undefined;
  const result = await execute(spec, ctx, (args) => {
    const cls = resolve(spec.fn) as new (...a: unknown[]) => object;
    instance = new cls(...args);
    return undefined;
  });
  if (result.error) {
    publishResult(result);
    send({ t: "actor-failed", error: result.error });
    return;
  }
  const host = new ActorHost(rt, instance!, create, { gpuIds, resources }, { execute, publishResult, send });
  await host.start();
  publishResult({ task: spec.id, returns: [] });
  send({ t: "actor-alive", pid: process.pid });
}

/** The node forwards every cancel: remember it (a leased delivery may come later), and act on a running task. */
async function cancel(taskId: string, force: boolean, recursive: boolean): Promise<void> {
  cancelled.add(taskId);
  const ctx = running.get(taskId);
  if (!ctx) return;
  ctx.canceled = true;
  if (recursive) rt.cancelAll(false);
  if (force && leased?.taskId === taskId) {
    // Gone, like a killed worker. First the lease gives back what it holds unstarted and acks what
    // it ran (else the broker would redeliver those as crashed attempts); this task is ours to ack
    // too, as its owner has already failed it.
    const task = leased;
    await lease?.suspend();
    if (leased !== task) return void lease?.resume(); // it finished meanwhile
    if (!task.acked) leaseCh.ack(task.delivery);
    forceExiting = true;
    await leaseCh.close().catch(() => undefined);
    process.exit(0);
  }
}

// ---- output to the driver ------------------------------------------------------------------

interface Pending { job: string; name: string; stream: "stdout" | "stderr"; text: string }
let pending: Pending[] = [];
let flushScheduled = false;

/** Tees stdout/stderr: the node's log file keeps everything, the task's driver gets its lines. */
function forwardOutput(): void {
  for (const stream of ["stdout", "stderr"] as const) {
    const target = process[stream];
    const write = target.write.bind(target) as (...a: unknown[]) => boolean;
    target.write = ((chunk: unknown, ...rest: unknown[]) => {
      const ctx = taskContext.getStore();
      if (ctx && ctx.jobId) {
        const text = typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString();
        const last = pending[pending.length - 1];
        if (last && last.job === ctx.jobId && last.name === ctx.logName && last.stream === stream) last.text += text;
        else pending.push({ job: ctx.jobId, name: ctx.logName, stream, text });
        if (!flushScheduled) {
          flushScheduled = true;
          setImmediate(flushOutput);
        }
      }
      return write(chunk, ...rest);
    }) as typeof target.write;
  }
}

/** Publishes buffered output; called before a result so the driver prints it first. */
function flushOutput(): void {
  flushScheduled = false;
  const batch = pending;
  pending = [];
  for (const p of batch) rt.publishLog(p.job, { name: p.name, pid: process.pid, stream: p.stream, text: p.text });
}

main().catch((err) => {
  console.error("warren worker failed to start:", err);
  process.exit(1);
});
