// A dead worker's last lines (crash) at its driver: what was printed already is not printed again.
import { printLog } from "../../src/core/driver-output";

function printed(run: () => void): string {
  const chunks: string[] = [];
  const spy = jest.spyOn(process.stdout, "write").mockImplementation((c: unknown) => {
    chunks.push(String(c));
    return true;
  });
  try {
    run();
  } finally {
    spy.mockRestore();
  }
  return chunks.join("");
}

test("a crash's tail, one run per task, prints only the lines not forwarded before", () => {
  const pid = 4242;
  const out = printed(() => {
    printLog({ name: "say", pid, stream: "stdout", text: "warm\n" });
    printLog({ name: "sayWaitAndExit", pid, stream: "stdout", text: "the line\n" });
    // The node sends the tail one source's run at a time: the earlier task's run first.
    printLog({ name: "say", pid, stream: "stdout", text: "warm\n", crash: true });
    printLog({ name: "sayWaitAndExit", pid, stream: "stdout", text: "the line\nlast words\n", crash: true });
  });
  expect(out).toBe("(say pid=4242) warm\n(sayWaitAndExit pid=4242) the line\n(sayWaitAndExit pid=4242) last words\n");
});

test("a line printed again by the task is still printed once more when it was not forwarded", () => {
  const pid = 4343;
  const out = printed(() => {
    printLog({ name: "tick", pid, stream: "stdout", text: "tick\ntick\n" });
    printLog({ name: "tick", pid, stream: "stdout", text: "tick\ntick\ntick\n", crash: true });
  });
  expect(out.split("tick\n").length - 1).toBe(3);
});
