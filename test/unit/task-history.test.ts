// The head's task history (head/events.ts): both rows of a task merged, its bounds per job and in
// all kept oldest-first, pages newest first; and the timeline made from it (api/timeline.ts).
import { TaskHistory } from "../../src/head/events";
import { traceEvents } from "../../src/api/timeline";
import * as v8 from "node:v8";
import { mergeTask, readTaskEvents, TaskEventWriter, type OwnerRow, type TaskEventBatch, type TaskRun } from "../../src/wire/task-events";

function owner(id: string, job: string, state: OwnerRow["state"] = "FINISHED"): OwnerRow {
  return {
    task_id: id, name: `f${id}`, func_or_class_name: "f", type: "NORMAL_TASK", job_id: job, actor_id: null, parent_task_id: null,
    required_resources: "CPU:1", creation_time_ms: 1000, end_time_ms: state === "FINISHED" ? 3000 : null, error_type: null, error_message: null,
    state, attempt_number: 0,
  };
}

function run(id: string, job: string, start: number, end: number | null = start + 5): TaskRun {
  return { task_id: id, name: `f${id}`, job_id: job, actor_id: null, state: end === null ? "RUNNING" : "FINISHED", start_time_ms: start, end_time_ms: end, error_type: null, error_message: null };
}

/** A batch of these rows, as a process sends it (through the serializer, as over the broker). */
function batch(tasks: OwnerRow[], runs: TaskRun[] = [], from = "w1"): TaskEventBatch {
  const w = new TaskEventWriter(tasks.length, runs.length);
  tasks.forEach((t, i) => w.task(i, t, t.state, t.attempt_number));
  runs.forEach((r, i) => w.run(i, r.task_id, r.name, r.job_id, r.actor_id, r.state, r.start_time_ms, r.end_time_ms ?? undefined,
    r.error_type === null ? undefined : { name: r.error_type, message: r.error_message!, stack: "", fields: {} }));
  return v8.deserialize(v8.serialize(w.batch(from, "n1", 42)));
}
const ids = (h: TaskHistory) => h.page(1000).entries.map((e) => (e.task ?? e.run)!.task_id);

test("a batch's columns read back as the rows written, nulls, fractions and errors included", () => {
  const failed = { ...owner("b", "j2", "FAILED"), actor_id: "act1", parent_task_id: "a", attempt_number: 2, error_type: "ValueError", error_message: "bad" };
  const running = { ...run("c", "j", 7.125, null), actor_id: "act1" };
  const failedRun = { ...run("d", "j", 1, 2), state: "FAILED" as const, error_type: "TypeError", error_message: "x is not a function" };
  const read = readTaskEvents(batch([owner("a", "j"), failed], [run("a", "j", 2000.25, 2010.5), running, failedRun]));
  expect(read.tasks).toEqual([owner("a", "j"), failed]);
  const where = { node_id: "n1", worker_id: "w1", worker_pid: 42 };
  expect(read.runs).toEqual([{ ...run("a", "j", 2000.25, 2010.5), ...where }, { ...running, ...where }, { ...failedRun, ...where }]);
});

test("a task's owner row and its run, heard in either order, make one row", () => {
  const h = new TaskHistory(10, 100);
  h.record(batch([], [run("a", "j", 2000.25, 2010.5)]));
  h.record(batch([owner("a", "j")]));
  const [e] = h.page(10).entries;
  const row = mergeTask(e.task, e.run);
  expect(row).toMatchObject({ task_id: "a", state: "FINISHED", func_or_class_name: "f", node_id: "n1", worker_id: "w1", worker_pid: 42, creation_time_ms: 1000, start_time_ms: 2000.25, end_time_ms: 2010.5 });
});

test("the owner's final state wins over a run still RUNNING; a run wins over the owner's pending state", () => {
  expect(mergeTask(owner("a", "j", "FAILED"), { ...run("a", "j", 1, null), node_id: "n", worker_id: "w", worker_pid: 1 }).state).toBe("FAILED");
  expect(mergeTask(owner("a", "j", "SUBMITTED_TO_WORKER"), { ...run("a", "j", 1, null), node_id: "n", worker_id: "w", worker_pid: 1 }).state).toBe("RUNNING");
});

test("a later attempt's run replaces an earlier one, not the other way round", () => {
  const h = new TaskHistory(10, 100);
  h.record(batch([], [run("a", "j", 500)]));
  h.record(batch([], [run("a", "j", 100)]));
  expect(h.page(1).entries[0].run!.start_time_ms).toBe(500);
});

test("at most perJob tasks per job, the oldest dropped first, other jobs untouched", () => {
  const h = new TaskHistory(3, 100);
  h.record(batch(["1", "2", "3", "4", "5"].map((i) => owner(i, "j1"))));
  h.record(batch([owner("x", "j2")]));
  expect(ids(h)).toEqual(["x", "5", "4", "3"]);
});

test("at most total tasks in all: the cluster's oldest goes first, across jobs", () => {
  const h = new TaskHistory(100, 4);
  h.record(batch([owner("1", "old"), owner("2", "old"), owner("3", "new"), owner("4", "new"), owner("5", "new")]));
  expect(ids(h)).toEqual(["5", "4", "3", "2"]);
  h.record(batch([owner("6", "old")]));
  expect(ids(h)).toEqual(["6", "5", "4", "3"]);
  expect(h.size).toBe(4);
});

test("bounds hold over many tasks, and the order queue stays compact", () => {
  const h = new TaskHistory(1000, 5000);
  for (let b = 0; b < 100; b++) h.record(batch(Array.from({ length: 1000 }, (_, i) => owner(`${b}-${i}`, `job${b % 3}`))));
  expect(h.size).toBe(3000);
  expect(ids(h)[0]).toBe("99-999");
  const many = new TaskHistory(10, 50);
  for (let i = 0; i < 20_000; i++) many.record(batch([owner(String(i), "one")]));
  expect(many.size).toBe(10);
  expect(ids(many)).toEqual(Array.from({ length: 10 }, (_, i) => String(19_999 - i)));
});

test("pages go from newest to oldest without gaps or repeats", () => {
  const h = new TaskHistory(100, 100);
  h.record(batch(Array.from({ length: 25 }, (_, i) => owner(String(i), "j"))));
  const seen: string[] = [];
  let before: number | undefined;
  do {
    const p = h.page(10, before);
    seen.push(...p.entries.map((e) => e.task!.task_id));
    before = p.next;
  } while (before !== undefined);
  expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => String(24 - i)));
});

test("a filtered page holds only tasks whose merged row passes, up to its limit; of() finds tasks by id", () => {
  const h = new TaskHistory(100, 100);
  h.record(batch(["1", "2", "3", "4", "5", "6"].map((i) => owner(i, "j", Number(i) % 2 ? "FINISHED" : "PENDING_NODE_ASSIGNMENT"))));
  // Task 4's run says it runs: its merged row is RUNNING, no longer pending.
  h.record(batch([], [run("4", "j", 10, null)]));
  const pending = h.page(10, Infinity, [["state", "=", "PENDING_NODE_ASSIGNMENT"]]).entries.map((e) => e.task!.task_id);
  expect(pending).toEqual(["6", "2"]);
  const page = h.page(2, Infinity, [["state", "!=", "PENDING_NODE_ASSIGNMENT"]]);
  expect(page.entries.map((e) => e.task!.task_id)).toEqual(["5", "4"]);
  expect(h.page(10, page.next, [["state", "!=", "PENDING_NODE_ASSIGNMENT"]]).entries.map((e) => e.task!.task_id)).toEqual(["3", "1"]);
  expect(h.of(["2", "nope", "4"]).map((e) => [e.task!.task_id, e.run?.state])).toEqual([["2", undefined], ["4", "RUNNING"]]);
});

test("the timeline: one X event per ended run, pid per node, tid per worker, microseconds", () => {
  const h = new TaskHistory(10, 100);
  h.record(batch([owner("a", "j")], [run("a", "j", 2000, 2001.5), run("b", "j", 1000, null)]));
  h.record({ ...batch([], [run("c", "j", 1500, 1502)], "w2"), node_id: "n2", pid: 7 });
  const events = traceEvents(h.page(10).entries);
  const xs = events.filter((e) => e.ph === "X");
  expect(xs.map((e) => e.name)).toEqual(["fc", "fa"]);
  expect(xs[1]).toMatchObject({ pid: expect.any(Number), tid: 42, ts: 2_000_000, dur: 1500, args: { task_id: "a", func_or_class_name: "f", node_id: "n1", worker_id: "w1" } });
  expect(xs[0].pid).not.toBe(xs[1].pid);
  const names = events.filter((e) => e.ph === "M").map((e) => e.args.name);
  expect(names).toEqual(expect.arrayContaining(["node n1", "node n2", "worker w1 pid=42", "worker w2 pid=7"]));
});

test("a job's end fails its unfinished tasks; its finished ones, and rows heard later, stand", () => {
  const h = new TaskHistory(10, 100);
  h.record(batch([owner("done", "j"), owner("queued", "j", "PENDING_NODE_ASSIGNMENT"), owner("running", "j", "SUBMITTED_TO_WORKER"), owner("other", "k", "PENDING_NODE_ASSIGNMENT")], [run("running", "j", 10, null)]));
  h.jobEnded("j", "the driver exited without shutdown()");
  const rows = new Map(h.page(10).entries.map((e) => [e.task!.task_id, mergeTask(e.task, e.run)]));
  expect(rows.get("done")!.state).toBe("FINISHED");
  expect(rows.get("other")!.state).toBe("PENDING_NODE_ASSIGNMENT");
  for (const id of ["queued", "running"]) {
    expect(rows.get(id)).toMatchObject({ state: "FAILED", error_type: "TaskCancelledError", error_message: "its job j ended: the driver exited without shutdown()" });
    expect(rows.get(id)!.end_time_ms).toBeGreaterThan(0);
  }
  h.record(batch([owner("queued", "j")]));
  expect(mergeTask(h.page(10).entries.find((e) => e.task!.task_id === "queued")!.task, undefined).state).toBe("FINISHED");
});
