// Every example prints what the seed page shows. Runs them as `npm run examples -- NAME` would.
import { spawnSync } from "node:child_process";
import * as path from "node:path";

function run(name: string): string {
  const r = spawnSync(process.execPath, [path.join(__dirname, "..", "..", "examples", "run.js"), name], { encoding: "utf8", timeout: 60_000 });
  expect(r.stderr).not.toMatch(/Error/);
  expect(r.status).toBe(0);
  return r.stdout;
}

test("nested tasks: g returns four ObjectRefs, h returns [1, 1, 1, 1]", () => {
  const out = run("nested_tasks");
  expect(out.match(/ObjectRef\([0-9a-f]{40}\)/g)).toHaveLength(4);
  expect(out).toContain("[ 1, 1, 1, 1 ]");
});

test("dynamic options: numReturns and a task name", () => {
  const out = run("dynamic_options");
  expect(out).toContain("numReturns: 2 -> [ 0, 1 ]");
  expect(out).toContain("ran as warren::special_f and returned 4");
});

test("FileLock: three writers, three whole lines", () => {
  expect(run("file_lock")).toMatch(/^hi there!\nhi there!\nhi there!\n/m);
});

test("SignalActor: ready, set, then four waiting tasks go, each in its own worker", () => {
  const out = run("signal_actor");
  const ready = out.indexOf("ready...");
  const set = out.indexOf("set..");
  const gos = [...out.matchAll(/^\(wait_and_go pid=(\d+)\) go!$/gm)];
  expect(ready).toBeGreaterThanOrEqual(0);
  expect(set).toBeGreaterThan(ready);
  expect(gos).toHaveLength(4);
  expect(gos.every((m) => m.index! > set)).toBe(true);
  expect(new Set(gos.map((m) => m[1])).size).toBe(4);
});

test("Queue: two consumers each get work", () => {
  const lines = [...run("queue").matchAll(/^\(consumer pid=\d+\) got work (\d+)$/gm)].map((m) => Number(m[1]));
  expect(lines.sort()).toEqual([0, 1]);
});

test("actor counter", () => {
  expect(run("actor_counter")).toContain("[ 1, 2, 3, 4, 5 ]");
});
