/**
 * head: the task history (Ray's GcsTaskManager). Every process sends its task events in batches
 * (core/task-events.ts); the head keeps, per task, the owner's latest row and the worker's latest
 * run (wire/task-events.ts), so the state API and the timeline show tasks whose owner or worker
 * has exited. Bounded twice, oldest first: at most `perJob` tasks of one job (Ray keeps 10,000
 * per job), and at most `total` in all (Ray's task_events_max_num_task_in_gcs, 100,000): past
 * it the oldest task of the cluster goes, so a finished job's tasks go before a running one's.
 *
 * Kept in memory only, as Ray's GCS keeps its task events: it is a record for people, written
 * tens of thousands of times a second under load, that no decision of the cluster reads; a head
 * started again starts an empty one (its registry, head/store.ts, is what must survive).
 */
import { BoundedMap } from "../bounded";
import { type Filter, matches } from "../wire/filters";
import { type TaskEntry, type TaskEventBatch, mergeTask, readTaskEvents } from "../wire/task-events";

/** A kept task, with the order it was first heard in. */
interface Kept extends TaskEntry {
  id: string;
  job: string;
  seq: number;
}

/** First in, first out, in O(1): an array read from `start`, compacted now and then. */
class Fifo<T> {
  private items: T[] = [];
  private start = 0;

  get size(): number {
    return this.items.length - this.start;
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    const item = this.items[this.start++];
    if (this.start > 1024 && this.start * 2 > this.items.length) this.keep(() => true);
    return item;
  }

  /** Keeps only the items `live` says are; compacts. */
  keep(live: (item: T) => boolean): void {
    this.items = this.items.slice(this.start).filter(live);
    this.start = 0;
  }

  /** Newest first. */
  *newest(): Generator<T> {
    for (let i = this.items.length - 1; i >= this.start; i--) yield this.items[i];
  }
}

export class TaskHistory {
  private readonly kept = new Map<string, Kept>();
  /** Every task in the order first heard; also holds tasks dropped by their job's bound (skipped, compacted). */
  private readonly order = new Fifo<Kept>();
  /** Each job's kept tasks, in the order first heard. */
  private readonly jobs = new Map<string, Fifo<Kept>>();
  private seq = 0;
  private readonly strings = new BoundedMap<string, string>(4096);

  constructor(private readonly perJob: number, private readonly total: number) {}

  get size(): number {
    return this.kept.size;
  }

  /** A batch of events: each row replaces the one of its kind it updates. */
  record(batch: TaskEventBatch): void {
    batch.node_id = this.intern(batch.node_id);
    batch.from = this.intern(batch.from);
    const { tasks, runs } = readTaskEvents(batch, batch.strings.map((s) => this.intern(s)));
    for (const row of tasks) {
      const e = this.entry(row.task_id, row.job_id);
      row.task_id = e.id;
      e.task = row;
    }
    for (const run of runs) {
      const e = this.entry(run.task_id, run.job_id);
      // A later attempt's run starts later; a run's end updates its start.
      if (e.run && e.run.start_time_ms > run.start_time_ms) continue;
      run.task_id = e.id;
      e.run = run;
    }
  }

  /**
   * One copy of each name, job, node and worker id: every batch arrives with strings of its own
   * (a kept task took 890 bytes, 590 with them interned).
   */
  private intern<S extends string>(s: S): S {
    const known = this.strings.get(s) as S | undefined;
    if (known !== undefined) return known;
    this.strings.set(s, s);
    return s;
  }

  /**
   * A job ended: its tasks that had not ended never will (their owner is gone, or stopped them),
   * so they are FAILED from now on, as in Ray. A row heard later (a driver's last batch) says better.
   */
  jobEnded(job: string, why: string): void {
    const now = Date.now();
    for (const k of this.jobs.get(job)?.newest() ?? []) {
      const state = mergeTask(k.task, k.run).state;
      if (!k.task || state === "FINISHED" || state === "FAILED") continue;
      k.task = { ...k.task, state: "FAILED", end_time_ms: now, error_type: "TaskCancelledError", error_message: `its job ${job} ended: ${why}` };
    }
  }

  /**
   * Newest first, at most `limit` tasks first heard before `before` whose merged row passes
   * `filters`; `next` for the page after.
   */
  page(limit: number, before = Infinity, filters: Filter[] = []): { entries: TaskEntry[]; next?: number } {
    const entries: TaskEntry[] = [];
    let last = before;
    for (const k of this.order.newest()) {
      if (entries.length === limit) return { entries, next: last };
      if (k.seq >= before || this.kept.get(k.id) !== k) continue;
      if (filters.length > 0 && !matches(mergeTask(k.task, k.run), filters)) continue;
      entries.push({ task: k.task, run: k.run });
      last = k.seq;
    }
    return { entries };
  }

  /** The kept entries of these tasks. */
  of(ids: string[]): TaskEntry[] {
    const entries: TaskEntry[] = [];
    for (const id of ids) {
      const k = this.kept.get(id);
      if (k) entries.push({ task: k.task, run: k.run });
    }
    return entries;
  }

  private entry(id: string, job: string): Kept {
    const known = this.kept.get(id);
    if (known) return known;
    const k: Kept = { id, job: this.intern(job), seq: ++this.seq };
    this.kept.set(id, k);
    this.order.push(k);
    let q = this.jobs.get(job);
    if (!q) this.jobs.set(job, (q = new Fifo()));
    q.push(k);
    if (q.size > this.perJob) this.drop(q.shift()!);
    while (this.kept.size > this.total) {
      const oldest = this.order.shift()!;
      // The oldest kept task of the cluster is the oldest of its job: its queue's first.
      if (this.kept.get(oldest.id) === oldest) this.drop(this.jobs.get(oldest.job)!.shift()!);
    }
    if (this.order.size > 2 * this.kept.size + 1024) this.order.keep((x) => this.kept.get(x.id) === x);
    return k;
  }

  private drop(k: Kept): void {
    this.kept.delete(k.id);
    if (this.jobs.get(k.job)?.size === 0) this.jobs.delete(k.job);
  }
}
