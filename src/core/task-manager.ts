/**
 * core: the task manager (Ray's task_manager). It keeps a record of every task this process
 * submitted until its result comes, moves each through its lifecycle (lifecycle/task.ts), keeps
 * what was published so a task lost with its node can be sent again, and keeps lineage (the
 * message of a finished task whose values sit in a node's store) to make them again should that
 * node die. Calls to an actor whose death is announced fail at once, sent or not.
 *
 * Invariant: a task has one record, in `tasks` until it ends, then in `ended`; a result for a
 * task not in `tasks` (cancelled, or a late duplicate after a retry) is dropped.
 */
import { BoundedMap } from "../bounded";
import { NodeDiedError } from "../errors";
import { EncodedError, encodeError } from "../serialization";
import { mayRetry } from "../scheduling/retry";
import { INITIAL_TASK_STATE, nextTaskState } from "../lifecycle/task";
import type { ResultMessage } from "../wire/messages";
import { type OwnerRow, type TaskInfo, type TaskState, errorColumns } from "../wire/task-events";
import { taskOf } from "../wire/ids";
import { CORE_DEFAULTS } from "./defaults";
import type { Runtime } from "./runtime";

/** A published task message: enough to publish it again. */
export interface Sent {
  exchange: string;
  key: string;
  body: Buffer;
  name: string;
  /** Attempts before this one; sent as the `attempt` header when not 0. */
  attempt: number;
  maxRetries: number;
  headers?: Record<string, unknown>;
  /** Durable mode: the broker confirmed it has it (a quorum queue keeps it through broker failures). */
  confirmed?: boolean;
}

export interface TaskRecord {
  /** Its lifecycle state, moved by the task machine (lifecycle/task.ts). */
  state: TaskState;
  returns: string[];
  name: string;
  /** For the state API. */
  info: TaskInfo;
  /** The actor an actor call goes to. */
  actorId?: string;
  /** What was published, kept to publish again if the node running it dies. */
  sent?: Sent;
  /** Once ended: which attempt it was (`sent` is dropped then, its body being most of a record). */
  attempt?: number;
  /** Objects of this process in its arguments, pinned until it ends (objects.ts escape). */
  pins?: string[];
}

interface Lineage {
  sent: Sent;
  returns: string[];
  name: string;
  info: TaskInfo;
  /** Its arguments' pins, kept while it may be run again. */
  pins?: string[];
}

export class TaskManager {
  private readonly tasks = new Map<string, TaskRecord>();
  /** Bounded, oldest dropped first (its arguments then unpinned). */
  private readonly lineage = new BoundedMap<string, Lineage>(CORE_DEFAULTS.lineageKept, (_, l) => this.unpin(l.pins));
  /** Final states of recently ended tasks, oldest first, for state queries. */
  private readonly ended = new BoundedMap<string, TaskRecord>(CORE_DEFAULTS.endedKept);
  /** Unfinished calls per actor, failed at once if the actor's death is announced. */
  private readonly actorCalls = new Map<string, Set<string>>();
  /** Actors known dead, with why: calls to them fail without being sent. */
  private readonly deadActors = new BoundedMap<string, EncodedError>(CORE_DEFAULTS.deadActorsKept);

  constructor(private readonly rt: Runtime) {}

  /** Records a new task. A call to an actor known dead fails at once: returns false then. */
  add(taskId: string, rec: TaskRecord): boolean {
    this.tasks.set(taskId, rec);
    this.rt.events.task(rec);
    const callee = rec.actorId;
    if (!callee) return true;
    const dead = this.deadActors.get(callee);
    if (dead) {
      this.fail(taskId, dead);
      return false;
    }
    let calls = this.actorCalls.get(callee);
    if (!calls) this.actorCalls.set(callee, (calls = new Set()));
    calls.add(taskId);
    return true;
  }

  get(taskId: string): TaskRecord | undefined {
    return this.tasks.get(taskId);
  }

  /** The ids of every task not yet ended. */
  unfinished(): string[] {
    return [...this.tasks.keys()];
  }

  /** The ids of the unfinished tasks that the task `parentId` submitted. */
  childrenOf(parentId: string): string[] {
    const ids: string[] = [];
    for (const [id, rec] of this.tasks) if (rec.info.parent_task_id === parentId) ids.push(id);
    return ids;
  }

  onResult(r: ResultMessage): void {
    const rec = this.tasks.get(r.task);
    if (!rec) {
      // Cancelled, or a late duplicate after a retry; whoever ran it may still hold what it was lent.
      if (r.held) this.rt.objects.lent(r.held);
      return;
    }
    this.tasks.delete(r.task);
    if (rec.actorId) {
      const calls = this.actorCalls.get(rec.actorId);
      calls?.delete(r.task);
      if (calls?.size === 0) this.actorCalls.delete(rec.actorId);
    }
    const objects = this.rt.objects;
    if (r.held) objects.lent(r.held); // before the pins go: the borrowers now keep those objects
    if (r.error) {
      rec.state = nextTaskState(rec.state, "FAIL");
      for (const id of rec.returns) objects.settle(id, { error: r.error });
    } else {
      rec.state = nextTaskState(rec.state, "FINISH");
      rec.returns.forEach((id, i) => objects.settle(id, r.returns![i]));
    }
    if (!r.error && rec.sent && r.returns!.some((v) => "node" in v)) {
      this.lineage.set(r.task, { sent: rec.sent, returns: rec.returns, name: rec.name, info: rec.info, pins: rec.pins });
    } else this.unpin(rec.pins);
    rec.pins = undefined;
    // Completed in place: a copy per finished task was most of this function's cost.
    rec.info.end_time_ms = Date.now();
    if (r.error) Object.assign(rec.info, errorColumns(r.error));
    rec.attempt = rec.sent?.attempt ?? 0;
    rec.sent = undefined;
    this.ended.set(r.task, rec);
    this.rt.events.task(rec);
  }

  fail(taskId: string, error: EncodedError): void {
    this.onResult({ task: taskId, error });
  }

  /** The unfinished tasks and actor creations published to the queue of `shape` (on the tasks exchange `exchange`). */
  waitingOn(exchange: string, shape: string): [string, TaskRecord][] {
    return [...this.tasks].filter(([, rec]) => rec.sent?.exchange === exchange && rec.sent.key === shape);
  }

  /**
   * What a lost connection may have lost of the unfinished tasks published: `resend`, the ones to
   * publish again; `askResults`, the ones whose result alone may be lost, so only their result is
   * asked for again (core/runtime.ts). Without durable mode every one is sent again: the broker
   * may have lost its message. In durable mode a task the broker confirmed is kept by its quorum
   * queue until a node takes it, so sending it again would run it twice; its result, if it was
   * in this process's inbox (which died with the connection), is asked of the worker that ran it.
   * Actor calls are always sent again: the actor host drops those it ran and answers again.
   */
  lostWithConnection(durable: boolean): { resend: string[]; askResults: string[] } {
    const resend: string[] = [];
    const askResults: string[] = [];
    for (const [id, rec] of this.tasks) {
      if (!rec.sent) continue;
      if (durable && rec.sent.confirmed && rec.sent.exchange === this.rt.topo.tasks) askResults.push(id);
      else resend.push(id);
    }
    return { resend, askResults };
  }

  /**
   * Publishes again, as the same attempt, the tasks of `ids` still unfinished (the connection
   * they went out on was lost). One that was running then runs again; its first result, if it
   * comes, is dropped as a duplicate. An actor drops a call it already ran and answers again.
   */
  resend(ids: string[]): void {
    for (const id of ids) {
      const rec = this.tasks.get(id);
      if (rec?.sent) this.rt.submitter.send(id, rec.sent);
    }
  }

  /** Fails every task not yet ended. */
  failAll(error: EncodedError): void {
    for (const taskId of this.unfinished()) this.fail(taskId, error);
  }

  /**
   * The head reports tasks that were running on a node that died (their deliveries were already
   * acked, see node/daemon.ts): publish each again while retries last, else fail it.
   */
  onTasksLost(lost: { nodeId: string; tasks: string[] }): void {
    for (const taskId of lost.tasks) {
      const rec = this.tasks.get(taskId);
      if (!rec?.sent) continue;
      const { attempt, maxRetries } = rec.sent;
      if (mayRetry(attempt, maxRetries)) {
        rec.sent.attempt++;
        this.rt.submitter.send(taskId, rec.sent);
      } else {
        const err = new NodeDiedError(`the node ${lost.nodeId} running ${rec.name} died, and maxRetries (${maxRetries}) retries were used`);
        this.fail(taskId, encodeError(err));
      }
    }
  }

  /** An actor's death: its calls fail; the first cause heard is the one later calls get. */
  onActorDead(d: { id: string; cause: EncodedError }): void {
    if (!this.deadActors.has(d.id)) this.deadActors.set(d.id, d.cause);
    for (const taskId of this.actorCalls.get(d.id) ?? []) this.fail(taskId, d.cause);
  }

  /**
   * Lineage reconstruction: publishes again the finished task that made the objects of `taskId`,
   * as its next attempt, if it is known, not running now, and within its maxRetries. Returns
   * whether it was sent; its returns are then pending again.
   */
  resubmitFinished(taskId: string): boolean {
    const l = this.lineage.get(taskId);
    if (!l || this.tasks.has(taskId)) return false;
    const { attempt, maxRetries } = l.sent;
    if (!mayRetry(attempt, maxRetries)) return false;
    this.lineage.delete(taskId);
    const sent: Sent = { ...l.sent, attempt: attempt + 1 };
    for (const id of l.returns) this.rt.objects.owned.reset(id);
    const rec: TaskRecord = { state: nextTaskState(INITIAL_TASK_STATE, "ARGS_READY"), returns: l.returns, name: l.name, info: { ...l.info, end_time_ms: null }, sent, pins: l.pins };
    this.tasks.set(taskId, rec);
    this.rt.events.task(rec);
    this.rt.submitter.send(taskId, sent);
    return true;
  }

  /** An object this process owned was freed: once none of its task's returns is left, nobody needs that task's lineage. */
  returnFreed(objectId: string): void {
    const taskId = taskOf(objectId);
    const l = this.lineage.get(taskId);
    if (!l || l.returns.some((id) => this.rt.objects.owned.has(id))) return;
    this.lineage.delete(taskId);
    this.unpin(l.pins);
  }

  private unpin(pins: string[] | undefined): void {
    if (pins) this.rt.objects.unpin(pins);
  }

  /** The state of a task this process submitted, from its lifecycle machine. */
  state(taskId: string): string | undefined {
    return this.tasks.get(taskId)?.state ?? this.ended.get(taskId)?.state;
  }

  /**
   * Ray's task columns of the tasks the head's history may not have right (state queries):
   * those not yet ended, then those ended since the last batch of task events. The head has the
   * rest; answering with all the ended ones too made every list carry 10,000 rows more.
   */
  rows(): OwnerRow[] {
    const rows = [...this.tasks.values()].map(rowOf);
    for (const r of this.rt.events.unsent()) if (!this.tasks.has(r.info.task_id)) rows.push(rowOf(r));
    return rows;
  }
}

/** A task's row as its owner knows it now: for state queries. */
export function rowOf(r: TaskRecord): OwnerRow {
  return { ...r.info, state: r.state, attempt_number: attemptOf(r) };
}

/** Which attempt of a task this is (0: the first). */
export function attemptOf(r: TaskRecord): number {
  return r.attempt ?? r.sent?.attempt ?? 0;
}
