/**
 * node worker pool (Ray's worker pool): the node's worker processes, forked from worker/main.js
 * and reused across tasks. It owns each worker's record (what it was handed, the actor it hosts,
 * the slot it leases), the idle list, the count of workers still starting, and ranks: each live
 * worker has the lowest number no other has, its lease's place in line at the broker
 * (leasePriority - rank). It hands tasks to idle workers for the scheduler and gives back what a
 * worker held; what a worker says, and its exit, go to the daemon (PoolEvents). It keeps spares:
 * ready workers for what comes next, more while tasks and actors keep taking the last one
 * (options.ts spareWorkers), so a burst of actors finds a process already started.
 *
 * Invariants a change must keep:
 * - A worker is in `idle` only while ready and holding nothing; `starting` counts those forked
 *   and not yet ready. An exit removes the worker from both before the daemon hears of it.
 * - A message to a worker may find it just dead, its exit not yet handled: post() drops it
 *   rather than raise EPIPE, which would end the node (the exit deals with what it held).
 * - What a worker held is given back to the ledger and GPU pool once (release), by whoever
 *   takes the slot from it: its task's end, its lease's return, its exit.
 * - A host process of shared actors (`host`) is never idle and runs no task: it gets only
 *   creations of shared actors of its shape, at most actorsPerHost of them.
 * - Spares are started at most one per CPU at a time (Ray's maximum_startup_concurrency): a
 *   worker's start is CPU-bound, so more at once would only make each one later. Only a spare
 *   that never ran anything is stopped when demand falls: it has printed nothing for a job.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ChildProcess, fork } from "node:child_process";
import { Demand, Ledger, Resources, compileDemand, parseShape } from "../scheduling/shape";
import type { Topology } from "../transport";
import { type NodeToWorker, type TaskTally, TALLY_NAMES, TALLY_OTHER, type WorkerConfig, type WorkerToNode } from "../wire/ipc";
import { readHead } from "../wire/messages";
import { creationActor, sharedCreation } from "../wire/descriptors";
import { newOwnerId } from "../wire/ids";
import type { HostedActor } from "./actors";
import type { Running } from "./deliveries";
import type { GpuPool } from "./gpus";
import type { NodeLogs } from "./logs";
import type { NodeOptions } from "./options";
import type { WorkerSlots } from "./scheduler";

const WORKER_MAIN = path.join(__dirname, "..", "worker", "main.js");

export interface Worker {
  proc: ChildProcess;
  /** Its stdout and stderr (node/logs.ts). */
  logFile: string;
  ready: boolean;
  /** It was handed a task or an actor once (a spare that never was may be stopped). */
  used: boolean;
  /** Its id (getRuntimeContext().workerId), which its runtime owns by: the node picks it. */
  workerId: string;
  /** The lowest number no other live worker of this node has: its lease's place in line (leasePriority). */
  rank: number;
  /** A task this node handed it (over IPC). */
  task?: Running;
  /** The actor it became, with a process of its own. */
  actor?: HostedActor;
  /**
   * A host process of shared actors: those it holds (being created, or alive) by id, the shape
   * they hold (hosts are per shape), the creations it runs (by actor id, until each is alive),
   * and those handed to it before it was ready.
   */
  host?: { shape: string; actors: Map<string, HostedActor>; creating: Map<string, Running>; waiting: NodeToWorker[] };
  /**
   * The slot it leases (worker/lease.ts): these resources and GPUs stay taken while it runs the
   * shape's tasks straight from the broker. `lent`: its running task waits in get() and lent its CPU.
   */
  lease?: { queue: string; units: Demand; demand: Resources; gpuIds: number[]; lent: boolean };
  /** A leased task running long, acked by the worker once the head knew (see the daemon's heartbeat). */
  longTask?: string;
  /** What it has run, by task name, as it last said (worker/tally.ts). */
  tally: TaskTally[];
}

/** What the pool tells the daemon. */
export interface PoolEvents {
  message(w: Worker, m: WorkerToNode): void;
  /** After the pool has forgotten the worker (it is in neither `all` nor idle). */
  exit(w: Worker, code: number | null, signal: string | null): void;
}

export interface WorkerPoolDeps {
  options: Pick<NodeOptions, "leases" | "leasePriority" | "actorsPerHost" | "spareWorkers" | "spareIdleMs">;
  /** The node's CPUs: spares kept at first, and started at once at most. */
  cpus: number;
  /** What each worker is started with (each is given its own id and log file). */
  worker: Omit<WorkerConfig, "workerId" | "log">;
  logs: NodeLogs;
  topo: Topology;
  free: Ledger;
  gpus: GpuPool;
  events: PoolEvents;
}

export class WorkerPool implements WorkerSlots {
  /** Every live worker. */
  readonly all = new Set<Worker>();
  private readonly idleList: Worker[] = [];
  private startingCount = 0;
  /** Ready workers kept idle for what comes next: one per CPU, doubled when the last idle one is taken. */
  private spareTarget: number;
  private readonly baseSpares: number;
  /** Workers started at once at most, by refill: one per CPU. */
  private readonly maxStarting: number;
  private stopped = false;
  /** Whether a worker was taken since the last look of `decay`. */
  private taken = false;
  private readonly decayTimer: NodeJS.Timeout;
  /** What the workers that exited had run, by task name. */
  private readonly exitedTally = new Map<string, TaskTally>();

  constructor(private readonly deps: WorkerPoolDeps) {
    this.baseSpares = this.spareTarget = Math.floor(deps.cpus);
    this.maxStarting = Math.max(1, this.baseSpares);
    this.decayTimer = setInterval(() => this.decay(), deps.options.spareIdleMs).unref();
  }

  /** What every worker started from now on is told (WARREN_WORKER). */
  get workerConfig(): WorkerPoolDeps["worker"] {
    return this.deps.worker;
  }

  get idle(): number {
    return this.idleList.length;
  }

  get starting(): number {
    return this.startingCount;
  }

  /** Workers running a task or holding a lease. */
  get busy(): number {
    let n = 0;
    for (const w of this.all) if (w.task || w.lease) n++;
    return n;
  }

  spawn(): Worker {
    const { logs, options, events } = this.deps;
    const workerId = newOwnerId();
    const out = logs.openWorker(workerId);
    const config: WorkerConfig = { ...this.deps.worker, workerId, log: { dir: logs.dir, ...logs.rotation } };
    const proc = fork(WORKER_MAIN, [], {
      env: { ...process.env, WARREN_WORKER: JSON.stringify(config) },
      // --expose-gc: to release borrowed refs (core/objects.ts reportHeld). No memory reducer: its
      // collections after a worker's start cost each idle worker about 4 ms of CPU a second for
      // 4 MiB less RSS, which a node of a hundred actors cannot spare on 2 cores.
      execArgv: [...process.execArgv, "--expose-gc", "--no-memory-reducer"],
      serialization: "advanced",
      stdio: ["ignore", out.fd, out.fd, "ipc"],
    });
    fs.closeSync(out.fd);
    let rank = 0;
    while ([...this.all].some((o) => o.rank === rank)) rank++;
    const w: Worker = { proc, workerId, logFile: out.named(proc.pid ?? 0), ready: false, used: false, rank: Math.min(rank, options.leasePriority - 1), tally: [] };
    this.all.add(w);
    this.startingCount++;
    proc.on("message", (m: WorkerToNode) => (m.t === "tally" ? (w.tally = m.tasks) : events.message(w, m)));
    proc.on("exit", (code, signal) => this.exited(w, code, signal));
    return w;
  }

  /** A worker said it is ready: it is idle now, or, a host, takes the creations handed to it meanwhile. */
  ready(w: Worker): void {
    w.ready = true;
    this.startingCount--;
    if (w.host) {
      for (const m of w.host.waiting.splice(0)) this.post(w, m);
      return;
    }
    this.idleList.push(w);
    this.refill();
  }

  /** Starts spares until `spareTarget` are idle or starting, one per CPU at a time. */
  refill(): void {
    if (this.stopped) return;
    while (this.idleList.length + this.startingCount < this.spareTarget && this.startingCount < this.maxStarting) this.spawn();
  }

  /** No worker taken for spareIdleMs: keep half as many spares, and stop the unused ones above that. */
  private decay(): void {
    if (this.taken || this.spareTarget === this.baseSpares) return void (this.taken = false);
    this.spareTarget = Math.max(this.baseSpares, this.spareTarget >> 1);
    for (const w of this.idleList.filter((o) => !o.used).slice(this.spareTarget)) w.proc.kill("SIGKILL");
  }

  /** The ready workers, by owner id: a state query waits for their answers. */
  alive(nodeId: string): Record<string, string> {
    const who: Record<string, string> = {};
    for (const w of this.all) if (w.ready) who[w.workerId] = `worker pid ${w.proc.pid} on node ${nodeId}`;
    return who;
  }

  /** A worker that holds nothing (any more) goes back to the idle list. */
  idleAgain(w: Worker): void {
    this.idleList.push(w);
  }

  hand(t: Running): void {
    const h = t.msg.properties.headers ?? {};
    if (sharedCreation(h)) return this.host(t, h);
    const w = this.take();
    w.task = t;
    const held = h.actor ? parseShape(h.held) : t.demand;
    if (h.actor) w.actor = { ...creationActor(h)!, creation: t.msg, held, heldUnits: compileDemand(held), gpuIds: t.gpuIds, alive: false };
    else w.lease = { queue: this.deps.topo.shapeQueue(t.shape), units: t.units, demand: t.demand, gpuIds: t.gpuIds, lent: false };
    const { leases, leasePriority } = this.deps.options;
    this.post(w, {
      ...taskMessage(t, held), gpuIds: t.gpuIds,
      lease: leases && w.lease ? { queue: w.lease.queue, priority: leasePriority - w.rank } : undefined,
    });
  }

  /**
   * An idle worker (or, for a host with none idle, one started for it) taken: the pool keeps
   * twice as many spares once the last idle one is gone, and starts what it now lacks.
   */
  private take(): Worker {
    const w = this.idleList.pop() ?? this.spawn();
    w.used = this.taken = true;
    if (this.idleList.length === 0) this.spareTarget = Math.max(this.spareTarget, Math.min(this.deps.options.spareWorkers, 2 * this.spareTarget || 1));
    this.refill();
    return w;
  }

  /**
   * A shared actor's creation goes to a host process of its shape with room (an idle worker
   * becomes one, or one is started, when none has), which constructs it beside the others.
   */
  private host(t: Running, h: Record<string, any>): void {
    const held = parseShape(h.held);
    const shape: string = h.held;
    let w = [...this.all].find((o) => o.host?.shape === shape && o.host.actors.size < this.deps.options.actorsPerHost);
    if (!w) {
      w = this.take();
      w.host = { shape, actors: new Map(), creating: new Map(), waiting: [] };
    }
    const host = w.host!;
    const a: HostedActor = { ...creationActor(h)!, creation: t.msg, held, heldUnits: compileDemand(held), gpuIds: [], alive: false };
    host.actors.set(a.id, a);
    host.creating.set(a.id, t);
    const m: NodeToWorker = { ...taskMessage(t, held), gpuIds: [] };
    if (w.ready) this.post(w, m);
    else host.waiting.push(m);
  }

  /** The actors worker `w` hosts: its own, or its shared ones. */
  actorsOf(w: Worker): Iterable<HostedActor> {
    return w.actor ? [w.actor] : w.host?.actors.values() ?? [];
  }

  /** The actor `id` that worker `w` hosts: its own, or one of its shared ones. */
  actorOf(w: Worker, id: string): HostedActor | undefined {
    return w.actor?.id === id ? w.actor : w.host?.actors.get(id);
  }

  /** The creation of actor `a` that worker `w` runs, until `a` is alive: a host's, or the worker's own task. */
  creationOf(w: Worker, a: HostedActor): Running | undefined {
    return a.alive ? undefined : w.host ? w.host.creating.get(a.id) : w.task;
  }

  /** Actor `a`'s creation is over (it is alive, or gone). */
  creationDone(w: Worker, a: HostedActor): void {
    if (w.host) w.host.creating.delete(a.id);
    else w.task = undefined;
  }

  unacked(consumerTag: string): number {
    let n = 0;
    for (const t of this.tasks()) if (!t.acked && t.msg.fields.consumerTag === consumerTag) n++;
    return n;
  }

  /** The tasks this node handed its workers, still running: shared actors' creations among them. */
  tasks(): Running[] {
    const running: Running[] = [];
    for (const w of this.all) {
      if (w.task) running.push(w.task);
      if (w.host) running.push(...w.host.creating.values());
    }
    return running;
  }

  /** Cancels a task on the worker running it (killed, if `force`), and on leased workers, which may run it unseen by the node. */
  cancel(c: { task: string; force: boolean; recursive: boolean }): void {
    for (const w of this.all) {
      if (w.task?.msg.properties.messageId === c.task) {
        w.task.cancelled = true;
        if (c.force) {
          w.proc.kill("SIGKILL");
          continue;
        }
      }
      if (w.ready && takesTasks(w)) this.post(w, { t: "cancel", task: c.task, force: c.force, recursive: c.recursive });
    }
  }

  /** A job ended: a worker this node handed one of its tasks is killed (as by a forced cancel); the others drop its leased tasks. */
  jobEnded(jobId: string): void {
    for (const w of this.all) {
      if (!takesTasks(w) || !w.ready) continue;
      if (w.task && readHead(w.task.msg.content).job === jobId) {
        w.task.cancelled = true;
        w.proc.kill("SIGKILL");
      } else {
        this.post(w, { t: "job-ended", job: jobId });
      }
    }
  }

  /**
   * A worker may have died a moment ago, its exit not yet handled (the daemon deals with what it
   * held): a message to it is dropped, not raised as an error that would end this node.
   */
  post(w: Worker, m: NodeToWorker): void {
    if (w.proc.connected) w.proc.send(m, () => undefined);
  }

  /** Gives back what a worker held: its lease (less a CPU it lent), or the task it was handed. */
  release(w: Worker): void {
    const { free, gpus } = this.deps;
    const l = w.lease;
    if (l) {
      free.give(l.lent ? compileDemand({ ...l.demand, CPU: 0 }) : l.units);
      gpus.release(l.gpuIds, l.demand.GPU ?? 0);
      w.lease = undefined;
    } else if (w.task) {
      free.give(w.task.units);
      gpus.release(w.task.gpuIds, w.task.demand.GPU ?? 0);
    }
  }

  /** Kills every worker; resolves once all have exited. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.decayTimer);
    const exits = [...this.all].map((w) => new Promise((res) => {
      w.proc.once("exit", res);
      w.proc.kill("SIGKILL");
    }));
    await Promise.all(exits);
  }

  /** What this node's workers have run, by task name (those alive and those gone), for its metrics. */
  tally(): TaskTally[] {
    const sum = new Map<string, TaskTally>();
    for (const t of this.exitedTally.values()) addTally(sum, t);
    for (const w of this.all) for (const t of w.tally) addTally(sum, t);
    return [...sum.values()];
  }

  private exited(w: Worker, code: number | null, signal: string | null): void {
    for (const t of w.tally) addTally(this.exitedTally, { ...t, running: 0 });
    this.all.delete(w);
    const i = this.idleList.indexOf(w);
    if (i >= 0) this.idleList.splice(i, 1);
    if (!w.ready) this.startingCount--;
    this.deps.events.exit(w, code, signal);
    this.refill();
  }
}

/** A worker that runs tasks: it hosts no actor, of its own or shared. */
export function takesTasks(w: Worker): boolean {
  return !w.actor && !w.host;
}

/** What a worker is handed to run `t` (a task, or an actor's creation), holding `held`; its GPUs are the caller's to add. */
function taskMessage(t: Running, held: Resources): Omit<Extract<NodeToWorker, { t: "task" }>, "gpuIds"> {
  return { t: "task", body: t.msg.content, tag: t.msg.fields.deliveryTag, attempt: t.msg.properties.headers?.attempt ?? 0, resources: held };
}

/** Adds `t` into `into` under its name, or under TALLY_OTHER once `into` holds TALLY_NAMES names. */
function addTally(into: Map<string, TaskTally>, t: TaskTally): void {
  const name = into.has(t.name) || into.size < TALLY_NAMES ? t.name : TALLY_OTHER;
  const sum = into.get(name) ?? { name, running: 0, finished: 0, failed: 0 };
  sum.running += t.running;
  sum.finished += t.finished;
  sum.failed += t.failed;
  into.set(name, sum);
}
