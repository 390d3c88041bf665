/**
 * worker: what this worker has run, by task name (actor calls and creations included): running
 * now, finished and failed since it started. The node reads it for its metrics (node/metrics.ts):
 * the worker tells it at most once per `WORKER_DEFAULTS.tallyMs`, and only after a change, so a
 * task costs a map lookup here and nothing on the wire.
 */
import { type TaskTally, TALLY_NAMES, TALLY_OTHER, type WorkerToNode } from "../wire/ipc";
import { WORKER_DEFAULTS } from "./defaults";

const byName = new Map<string, TaskTally>();
let changed = false;

function of(name: string): TaskTally {
  const t = byName.get(name);
  if (t) return t;
  const key = byName.size < TALLY_NAMES ? name : TALLY_OTHER;
  const made = byName.get(key) ?? { name: key, running: 0, finished: 0, failed: 0 };
  byName.set(key, made);
  return made;
}

export function taskStarted(name: string): void {
  of(name).running++;
  changed = true;
}

export function taskEnded(name: string, failed: boolean): void {
  const t = of(name);
  t.running--;
  if (failed) t.failed++;
  else t.finished++;
  changed = true;
}

/** Tells the node (through `send`) what changed, from now on. */
export function reportTally(send: (m: WorkerToNode) => void): void {
  setInterval(() => {
    if (!changed) return;
    changed = false;
    send({ t: "tally", tasks: [...byName.values()] });
  }, WORKER_DEFAULTS.tallyMs).unref();
}
