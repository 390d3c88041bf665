/**
 * worker: the process that runs user code. A node forks it, hands it tasks over IPC, and reuses
 * it across tasks. It loads user modules by path (TypeScript through tsx), publishes results
 * straight to the owner's inbox (one broker hop, not back through the node), sends its output to
 * the driver of the task's job, and is itself an owner for the tasks it submits.
 */
import { BoundedSet } from "../bounded";
import { register as registerTypeScript } from "tsx/cjs/api";
import { WarrenError } from "../errors";
import { encodeError } from "../serialization";
import { resolve } from "../core/functions";
import { Runtime } from "../core/runtime";
import { runOf } from "../core/task-events";
import type { TaskContext } from "../core/context";
import { ActorCreation, ResultMessage, TaskSpec, readTask } from "../wire/messages";
import { ActorHost } from "./actor-host";
import { MailboxChannels } from "./mailbox-channel";
import { Lease, leaseWindow } from "./lease";
import { MaybePromise, andThen, execute, publishResult, showTitle, sendResultsAgain } from "./execute";
import { IdleAfter } from "./idle";
import { forwardOutput } from "./output";
import { reportTally } from "./tally";
import "./wasm"; // registers warren:wasm, the runner of modules shipped by warren.wasm()
import { RecentDeaths, mayRetry, nextAttempt, onRedelivery, publishAgain } from "../scheduling/retry";
import type * as amqp from "amqplib";
import { LONG_TASK_MS, type NodeToWorker, type WorkerConfig, type WorkerToNode } from "../wire/ipc";

const config: WorkerConfig = JSON.parse(process.env.WARREN_WORKER ?? "null");
if (!config) {
  console.error("warren worker: started without WARREN_WORKER; workers are started by a warren node");
  process.exit(2);
}
// Every user module imports warren's public surface: loaded before tsx's hooks, which would lex
// and resolve each of its files again, it costs a worker about 45 ms less CPU at start.
require("warren");
registerTypeScript();
showTitle("IDLE");

let rt: Runtime;
const running = new Map<string, TaskContext>();
/** A worker without a task keeps the last one's title for a while: a title change is a syscall. */
const idleTitle = new IdleAfter(50, () => running.size > 0, () => showTitle("IDLE"));
/** Tasks cancelled anywhere in the cluster (forwarded by the node), for deliveries still to come. */
const cancelled = new BoundedSet<string>(100_000);
/** Jobs whose end the head announced: their tasks are not run here. */
const endedJobs = new BoundedSet<string>(1024);
/** The channel a lease consumes on (one per worker, reused), the lease, and the leased task running. */
let leaseCh: amqp.Channel;
let lease: Lease | undefined;
let leased: { taskId: string; delivery: amqp.ConsumeMessage; acked: boolean } | undefined;
/** The actors this worker hosts, by id: its own one, or a host process's shared ones. */
const hosts = new Map<string, ActorHost>();
/** The channels their mailboxes are consumed on. */
let channels: MailboxChannels;
/** Leased workers of this node that died lately (their node tells), by queue. */
const deaths = new RecentDeaths();
/** Set when a force-cancel ends this worker: its lease channel closes on purpose. */
let forceExiting = false;

function send(msg: WorkerToNode): void {
  process.send?.(msg);
}

async function main(): Promise<void> {
  rt = await Runtime.start({
    address: config.address,
    cluster: config.cluster,
    ownerId: config.workerId,
    nodeId: config.nodeId,
    storePath: config.storePath,
    jobId: "",
    namespace: "",
    logToDriver: false,
    role: "worker",
    durable: config.durable,
  });
  let blocked = 0;
  rt.resolver.blockHooks = {
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
  await openLeaseChannel();
  rt.onLink({
    down: () => {
      leaseCh = rt.link.outbox.channel;
      if (leased) leased.acked = true; // its delivery tag died with the channel
      lease?.connectionLost();
    },
    restore: openLeaseChannel,
  });
  // One listener for every actor hosted here: the channels first, then a host's thousand mailboxes consumed again at once, not one after another.
  channels = new MailboxChannels(rt);
  rt.onLink({
    down: () => {
      channels.down();
      for (const h of hosts.values()) h.connectionLost();
    },
    restore: async () => {
      await channels.restore();
      await Promise.all([...hosts.values()].map((h) => h.restore()));
    },
  });
  rt.onResultsWanted = sendResultsAgain;
  rt.onExitActor = (id) => hosts.get(id)?.exitSoon();
  rt.runningRows = () => [...running.values()].map((c) => ({
    ...runOf(c, blocked > 0 ? "RUNNING_IN_GET" : "RUNNING"), node_id: config.nodeId, worker_id: rt.config.ownerId, worker_pid: process.pid, running: true,
  }));
  forwardOutput(config);
  reportTally(send);
  process.on("message", (m: NodeToWorker) => {
    if (m.t === "task") void runTask(m);
    else if (m.t === "cancel") void cancel(m.task, m.force, m.recursive);
    else if (m.t === "job-ended") jobEnded(m.job);
    else if (m.t === "worker-died") deaths.note(m.queue, m.death);
    else if (m.t === "serve") void hosts.get(m.id)?.serve();
    else if (m.t === "stop-actor") void hosts.get(m.id)?.stop();
    else if (m.t === "ack-long" && leased?.taskId === m.task && !leased.acked) {
      leased.acked = true;
      leaseCh.ack(leased.delivery);
    }
  });
  process.on("disconnect", () => void leave());
  send({ t: "ready", pid: process.pid });
}

/** Its node is gone: the last task events go out (a channel's close waits for what was sent on it), then the worker ends. */
async function leave(): Promise<void> {
  rt.events.close();
  await Promise.race([rt.ch.close(), new Promise((r) => setTimeout(r, 1000))]).catch(() => undefined);
  process.exit(0);
}

async function openLeaseChannel(): Promise<void> {
  const ch = await rt.conn.createChannel();
  rt.link.watch(ch, (err) => forceExiting || rt.channelLost(err), "the lease");
  leaseCh = ch;
}

async function runTask(m: Extract<NodeToWorker, { t: "task" }>): Promise<void> {
  const { tag, attempt, gpuIds, resources } = m;
  const spec = readTask(m.body);
  setVisibleGpus(gpuIds);
  if (spec.actor?.create) return hostActor(spec, spec.actor.create, gpuIds, resources);
  const started = performance.now();
  const { result, retry } = await runSpec(spec, gpuIds, resources, attempt);
  const ranMs = performance.now() - started;
  if (!retry) publishResult(result);
  send({ t: "done", tag, retry });
  // With a lease, go on taking this shape's tasks from the broker directly (node/worker-pool.ts hands the lease).
  if (m.lease) {
    if (!rt.link.up) return send({ t: "lease-returned" }); // nothing to lease on until the broker is back
    lease = new Lease(leaseCh, m.lease.queue, m.lease.priority, ranMs, (d) => runLeased(d, m.lease!.queue, gpuIds, resources), () => {
      lease = undefined;
      send({ t: "lease-returned" });
    }, leaseWindow(rt.topo.durable));
    await lease.start();
  }
}

/**
 * A task of the leased shape, delivered to this worker: run it and answer. Returns whether the
 * delivery is still to be acked (the lease acks in batches), not when it was acked early as long.
 */
function runLeased(d: amqp.ConsumeMessage, queue: string, gpuIds: number[], resources: Record<string, number>): MaybePromise<boolean> {
  const h = d.properties.headers ?? {};
  const taskId: string = d.properties.messageId;
  const spec = readTask(d.content);
  if (cancelled.has(taskId) || endedJobs.has(spec.job)) return true;
  // Given back by a lost connection rather than by a crash, while the cluster reconnects (durable mode keeps them).
  if (d.fields.redelivered && !rt.link.settling()) {
    // The worker or node that held it died: that was an attempt (scheduling/retry.ts).
    const r = onRedelivery(d);
    if (r.publish) {
      publishAgain(leaseCh, d, r.headers);
      return true;
    }
    return deaths.of(queue).then((died) => {
      publishResult({ task: taskId, error: encodeError(r.error(died)) });
      return true;
    });
  }
  leased = { taskId, delivery: d, acked: false };
  const finish = ({ result, retry }: Outcome): boolean => {
    if (retry) publishAgain(leaseCh, d, nextAttempt(h));
    else publishResult(result);
    const acked = leased!.acked;
    if (acked) send({ t: "long-done", task: taskId });
    leased = undefined;
    return !acked;
  };
  const outcome = runSpec(spec, gpuIds, resources, h.attempt ?? 0);
  if (!(outcome instanceof Promise)) return finish(outcome);
  // Only a task that waits can run long enough to need it (one that never yields blocks timers too).
  const long = setTimeout(() => send({ t: "long", task: taskId }), LONG_TASK_MS);
  return outcome.then((o) => {
    clearTimeout(long);
    return finish(o);
  });
}

interface Outcome { result: ResultMessage; retry: boolean }

/** Runs a task's function; `retry` when it threw and retryExceptions allows another attempt. */
function runSpec(spec: TaskSpec, gpuIds: number[], resources: Record<string, number>, attempt: number): MaybePromise<Outcome> {
  const ctx: TaskContext = { taskId: spec.id, taskName: spec.name, logName: spec.name, jobId: spec.job, namespace: spec.namespace, canceled: false, gpuIds, resources };
  running.set(spec.id, ctx);
  showTitle(spec.name);
  const result = execute(spec, ctx, (args) => {
    const fn = resolve(spec.fn);
    if (typeof fn !== "function") throw new WarrenError(`${spec.name} is not a function in ${spec.fn.module}`);
    return fn(...args);
  });
  return andThen(result, (result) => {
    running.delete(spec.id);
    idleTitle.touch();
    const retry = result.error !== undefined && spec.retryExceptions && !ctx.canceled && mayRetry(attempt, spec.maxRetries);
    if (retry && result.held) rt.objects.tellHeld(result.held);
    return { result, retry };
  });
}

/** A GPU task's worker sees only its GPUs; other tasks see what the node was started with. */
const inheritedGpus = process.env.CUDA_VISIBLE_DEVICES;
function setVisibleGpus(ids: number[]): void {
  if (ids.length > 0) process.env.CUDA_VISIBLE_DEVICES = ids.join(",");
  else if (inheritedGpus === undefined) delete process.env.CUDA_VISIBLE_DEVICES;
  else process.env.CUDA_VISIBLE_DEVICES = inheritedGpus;
}

/**
 * Runs an actor's constructor; on success this worker hosts the actor: until it dies for one of
 * its own process, or beside the other shared actors of a host process (which holds no GPUs).
 */
async function hostActor(spec: TaskSpec, create: ActorCreation, gpuIds: number[], resources: Record<string, number>): Promise<void> {
  const info = create.handle;
  const ctx: TaskContext = { taskId: spec.id, taskName: spec.name, logName: info.className, jobId: spec.job, namespace: spec.namespace, actorId: info.id, canceled: false, gpuIds, resources };
  showTitle(create.shared ? `${info.className}.__init__` : info.className);
  let instance: object | undefined;
  const result = await execute(spec, ctx, (args) => {
    const cls = resolve(spec.fn) as new (...a: unknown[]) => object;
    instance = new cls(...args);
    return undefined;
  });
  if (result.error) {
    publishResult(result);
    send({ t: "actor-failed", id: info.id, error: result.error });
    return;
  }
  const channel = create.shared ? channels.shared() : channels.own(create.maxConcurrency);
  const host = new ActorHost(rt, instance!, create, { gpuIds, resources }, send, channel, () => hosts.delete(info.id));
  hosts.set(info.id, host);
  await host.start();
  publishResult({ ...result, returns: [] }); // with the refs its constructor was given that it keeps
  send({ t: "actor-alive", id: info.id, pid: process.pid });
}

/** A job ended: its leased deliveries are dropped from now on, and its task running here stops as if force-cancelled. */
function jobEnded(job: string): void {
  endedJobs.add(job);
  for (const ctx of running.values()) if (ctx.jobId === job) void cancel(ctx.taskId, true, true);
}

/** The node forwards every cancel: remember it (a leased delivery may come later), and act on a running task. */
async function cancel(taskId: string, force: boolean, recursive: boolean): Promise<void> {
  cancelled.add(taskId);
  const ctx = running.get(taskId);
  if (!ctx) return;
  ctx.canceled = true;
  if (recursive) rt.cancelChildren(taskId, false);
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

main().catch((err) => {
  console.error("warren worker failed to start:", err);
  process.exit(1);
});
