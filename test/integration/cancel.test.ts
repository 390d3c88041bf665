// A recursive cancel, end to end in a worker: on one CPU, a task that left a child running and a
// later task that waits on its own child run in the same worker process; cancelling the later one
// cancels its child only, and the first task's child runs to its end.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as warren from "warren";
import { waitForCondition } from "warren/testing";
import { leaveChild, waitOnChild } from "../fixtures/tasks";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "warren-cancel-"));
beforeAll(() => warren.init({ numCpus: 1 }));
afterAll(async () => {
  await warren.shutdown();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test("a recursive cancel cancels the task's own children, not those of the task before it in the same worker", async () => {
  const first = await warren.get(leaveChild.remote(3));
  const marker = path.join(tmp, "waiting");
  const second = waitOnChild.remote(marker, 30);
  await waitForCondition(() => fs.existsSync(marker) && fs.readFileSync(marker, "utf8") !== "");
  expect(Number(fs.readFileSync(marker, "utf8"))).toBe(first.pid); // the one CPU's worker ran both
  await warren.cancel(second);
  await expect(warren.get(second)).rejects.toBeInstanceOf(warren.TaskCancelledError);
  expect(await warren.get(first.child[0], { timeout: 20 })).toBe(3);
}, 60_000);
