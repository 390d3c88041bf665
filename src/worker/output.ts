/**
 * A worker's output: stdout and stderr go to its own log file (core/log-files.ts: rotated, with
 * a marker before the output of each new task or actor), and what a task prints also goes to the
 * driver of its job, as `(name pid=N) line` (Ray's log forwarding).
 */
import { currentRuntime } from "../core/current";
import { taskContext } from "../core/context";
import { type Source, type Stream, markerLine, takeOverOutput, workerLogFile } from "../core/log-files";
import type { WorkerConfig } from "../wire/ipc";

interface Pending { job: string; name: string; stream: Stream; text: string }
let pending: Pending[] = [];
let flushScheduled = false;
/** The source of the last output written, as its marker says it. */
let lastSource = "";

/** Tees stdout/stderr: the worker's log file keeps everything, the task's driver gets its lines. */
export function forwardOutput(config: WorkerConfig): void {
  takeOverOutput(workerLogFile(config.log.dir, config.workerId, process.pid), config.log, (stream, chunk, fresh) => {
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
    const source: Source = ctx ? { stream, name: ctx.logName, job: ctx.jobId || undefined, task: ctx.taskId, actor: ctx.actorId } : { stream };
    const marker = markerLine(source);
    if (!fresh && marker === lastSource) return undefined;
    lastSource = marker;
    return marker;
  });
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
