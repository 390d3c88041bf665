/**
 * core: worker output at its job's driver, printed `(name pid=N) line` (Ray's log forwarding).
 * When a worker dies its node sends its last lines again (`crash`), as those printed just before
 * it died were never forwarded: of these, the ones this driver printed already are left out.
 */
import { BoundedMap } from "../bounded";

/** A line (or lines) of a worker's output, forwarded to its job's driver. */
export interface LogEntry {
  name: string;
  pid: number;
  stream: "stdout" | "stderr";
  text: string;
  /** A dead worker's last lines, from its log file (node/logs.ts). */
  crash?: boolean;
}

/** How many lines printed last are remembered per worker, to match a crash's tail against. */
const REMEMBERED = 20;
const printed = new BoundedMap<number, string[]>(1024);

export function printLog(e: LogEntry): void {
  let lines = e.text.endsWith("\n") ? e.text.slice(0, -1).split("\n") : e.text.split("\n");
  const seen = printed.get(e.pid) ?? [];
  if (e.crash) lines = lines.slice(overlap(seen, lines));
  if (lines.length === 0) return;
  printed.set(e.pid, [...seen, ...lines].slice(-REMEMBERED));
  const out = e.stream === "stderr" ? process.stderr : process.stdout;
  out.write(lines.map((l) => `(${e.name} pid=${e.pid}) ${l}\n`).join(""));
}

/**
 * The most lines that begin `next` and stand together somewhere in `seen`. A crash's tail comes
 * one source's run at a time (node/logs.ts), so a run the worker printed before its last task's
 * is matched inside what was printed, not only at its end.
 */
function overlap(seen: string[], next: string[]): number {
  let most = 0;
  for (let start = 0; start < seen.length; start++) {
    let n = 0;
    while (n < next.length && start + n < seen.length && seen[start + n] === next[n]) n++;
    most = Math.max(most, n);
  }
  return most;
}
