/**
 * The processes of warren on this machine, found by their environment: a node daemon has its
 * NodeConfig in WARREN_NODE, and its workers inherit it (so `"cluster":"NAME"` finds a cluster's
 * processes). Used by `warren start/stop` and by the sweep of dead clusters (core/leftovers.ts).
 */
import * as fs from "node:fs";

/** Whether process `pid` runs with `text` in its environment (so it is that process, not one that reused its pid). */
export function runsWith(pid: number, text: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    return !zombie(pid) && fs.readFileSync(`/proc/${pid}/environ`, "latin1").includes(text);
  } catch {
    return true; // no /proc (not Linux): the pid answered, trust it
  }
}

/** The title of process `pid` as `ps` shows it (its command line, which process.title rewrites); null without /proc. */
export function processTitle(pid: number): string | null {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
  } catch {
    return null;
  }
}

/** Whether `pid` has exited and is not yet reaped (throws without /proc, or once it is gone). */
function zombie(pid: number | string): boolean {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
}

/** The processes (other than this one) with `text` in their environment; undefined where there is no /proc to look in. */
export function processesWith(text: string): number[] | undefined {
  const all = environments();
  return all && [...all].filter(([, env]) => env.includes(text)).map(([pid]) => pid);
}

/** Every live process's environment (other than this one's), by pid, read once; undefined where there is no /proc. */
export function environments(): Map<number, string> | undefined {
  let entries: string[];
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return undefined;
  }
  const envs = new Map<number, string>();
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (!zombie(entry)) envs.set(Number(entry), fs.readFileSync(`/proc/${entry}/environ`, "latin1"));
    } catch {
      // the process ended while we looked, or is not ours to read
    }
  }
  return envs;
}
