/**
 * A worker's output: stdout and stderr still go to the node's log file, and what a task prints
 * also goes to the driver of its job, as `(name pid=N) line` (Ray's log forwarding).
 */
import { currentRuntime } from "../core/current";
import { taskContext } from "../core/context";

interface Pending { job: string; name: string; stream: "stdout" | "stderr"; text: string }
let pending: Pending[] = [];
let flushScheduled = false;

/** Tees stdout/stderr: the node's log file keeps everything, the task's driver gets its lines. */
export function forwardOutput(): void {
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

/** Publishes buffered output; called before results too, so the driver prints it first. */
export function flushOutput(): void {
  flushScheduled = false;
  if (pending.length === 0) return;
  const batch = pending;
  pending = [];
  const rt = currentRuntime();
  for (const p of batch) rt.publishLog(p.job, { name: p.name, pid: process.pid, stream: p.stream, text: p.text });
}
