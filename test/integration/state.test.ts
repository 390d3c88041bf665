// The state API: tasks and objects from their owners (and nodes), actors and nodes from the head.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as warren from "warren";
import { waitForCondition } from "warren/testing";
import { add, throwType, touchThenSleep } from "../fixtures/tasks";
import { Counter } from "../fixtures/actors";
import { markThenWait } from "../fixtures/placement";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "warren-state-"));
let info: warren.ClusterInfo;

beforeAll(async () => {
  info = await warren.init({ numCpus: 2 });
});
afterAll(async () => {
  await warren.shutdown();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function taskState(taskId: string): Promise<string | undefined> {
  return (await warren.state.listTasks({ filters: [["task_id", "=", taskId]] }))[0]?.state;
}

test("listTasks shows a running task on its node, then FINISHED; failures with their error type", async () => {
  const marker = path.join(tmp, "running");
  const ref = touchThenSleep.options({ name: "slowpoke" }).remote(marker, 1);
  await waitForCondition(() => fs.existsSync(marker));
  const [running] = await warren.state.listTasks({ filters: { name: "slowpoke" }, detail: true });
  expect(running.state).toBe("RUNNING");
  expect(running.node_id).toBe(info.nodeId);
  expect(running.worker_pid).toBeGreaterThan(0);
  expect(running.type).toBe("NORMAL_TASK");
  expect(running.required_resources).toBe("CPU:1");
  await warren.get(ref);
  expect(await taskState(ref.taskId)).toBe("FINISHED");

  const bad = throwType.remote();
  await warren.get(bad).catch(() => undefined);
  const [failed] = await warren.state.listTasks({ filters: [["task_id", "=", bad.taskId]], detail: true });
  expect(failed.state).toBe("FAILED");
  expect(failed.error_type).toBe("TaskError");
});

test("a task waiting in get() is RUNNING_IN_GET", async () => {
  const marker = path.join(tmp, "in-get");
  const ref = markThenWait.remote(marker, 1.5);
  await waitForCondition(() => fs.existsSync(marker));
  await waitForCondition(async () => (await taskState(ref.taskId)) === "RUNNING_IN_GET");
  await warren.get(ref);
});

test("filters, limit and columns", async () => {
  await warren.get(Array.from({ length: 5 }, (_, i) => add.remote(i, i)));
  const some = await warren.state.listTasks({ filters: [["func_or_class_name", "=", "add"]], limit: 3 });
  expect(some).toHaveLength(3);
  expect(Object.keys(some[0]).sort()).toEqual(["actor_id", "attempt_number", "end_time_ms", "error_type", "func_or_class_name", "job_id", "name", "node_id", "parent_task_id", "start_time_ms", "state", "task_id", "type"].sort());
  const notAdd = await warren.state.listTasks({ filters: [["func_or_class_name", "!=", "add"]], limit: 1000 });
  expect(notAdd.every((t) => t.func_or_class_name !== "add")).toBe(true);
  await expect(warren.state.listTasks({ filters: [["state", "~", "x"]] as never })).rejects.toThrow(warren.OptionsError);
});

test("summarizeTasks counts states per function", async () => {
  const { summary, total_tasks } = await warren.state.summarizeTasks();
  expect(summary.add.state_counts.FINISHED).toBeGreaterThanOrEqual(5);
  expect(summary.add.type).toBe("NORMAL_TASK");
  expect(summary.throwType.state_counts.FAILED).toBeGreaterThanOrEqual(1);
  expect(total_tasks).toBeGreaterThanOrEqual(8);
});

test("listActors shows actors with their state; actor calls are ACTOR_TASKs", async () => {
  const c = Counter.options({ name: "listed" }).remote();
  await warren.get(c.increment.remote());
  const [row] = await warren.state.listActors({ filters: { name: "listed" }, detail: true });
  expect(row).toMatchObject({ class_name: "Counter", state: "ALIVE", node_id: info.nodeId, is_detached: false });
  const calls = await warren.state.listTasks({ filters: { func_or_class_name: "Counter.increment" } });
  expect(calls[0].type).toBe("ACTOR_TASK");
  await warren.kill(c);
  await waitForCondition(async () => (await warren.state.listActors({ filters: { actor_id: c.actorId } }))[0]?.state === "DEAD");
});

test("listObjects shows owned objects with their sizes; listNodes the node", async () => {
  const big = warren.put(Buffer.alloc(200_000));
  const objects = await warren.state.listObjects({ filters: { object_id: big.hex() } });
  expect(objects).toHaveLength(1);
  expect(objects[0].object_size).toBeGreaterThan(200_000);
  expect(objects[0].owner_pid).toBe(process.pid);
  const nodes = await warren.state.listNodes();
  expect(nodes).toEqual([expect.objectContaining({ node_id: info.nodeId, state: "ALIVE", is_head_node: true })]);
});

test("a query waits for the processes known alive, not a fixed window, and names one that does not answer", async () => {
  const started = Date.now();
  const quiet = await warren.state.listTasks({ limit: 1 });
  expect(Date.now() - started).toBeLessThan(1000);
  expect(quiet.unanswered).toBeUndefined();

  const marker = path.join(tmp, "stopped");
  const ref = touchThenSleep.options({ name: "frozen" }).remote(marker, 1);
  await waitForCondition(() => fs.existsSync(marker));
  const [row] = await warren.state.listTasks({ filters: { name: "frozen" }, detail: true });
  process.kill(row.worker_pid!, "SIGSTOP");
  try {
    const partial = await warren.state.listTasks({ filters: { name: "frozen" }, detail: true });
    expect(partial.unanswered).toEqual([`worker pid ${row.worker_pid} on node ${info.nodeId}`]);
    expect(partial[0].state).not.toBe("RUNNING"); // only the owner's view is left
  } finally {
    process.kill(row.worker_pid!, "SIGCONT");
  }
  await warren.get(ref);
});
