/**
 * The memory figures: the RSS of a cluster's processes (bench/procs.js), read after the run, and
 * the memory target's situation measured on its own by a fresh driver (bench/idle_memory.js, run
 * here as a child process so that the benchmark's own heap does not count).
 */
import { spawn } from "node:child_process";
import * as path from "node:path";

interface Procs {
  memorySnapshot(cluster: string, driverPid?: number): MemorySnapshot;
  /** A process's RSS in KiB, or undefined if it is gone. */
  rssKiB(pid: number): number | undefined;
}
export interface MemorySnapshot {
  driverMiB: number;
  driverFileMiB: number;
  nodeMiB: number;
  nodePids: number[];
  workers: { pid: number; rssMiB: number }[];
  totalMiB: number;
}
export const procs: Procs = require("./procs.js");

const ROOT = path.resolve(__dirname, "..");
/** The memory target: a driver plus a node with 4 idle workers, in MiB. */
export const MEMORY_TARGET_MIB = 400;

export function measureIdleMemory(): Promise<MemorySnapshot> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, "idle_memory.js")], { stdio: ["ignore", "pipe", "pipe"], cwd: ROOT });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split("\n").pop() ?? "";
      if (code === 0 && line.startsWith("{")) return resolve(JSON.parse(line));
      reject(new Error(`idle_memory.js ${signal ? `was killed (${signal}, 90 s limit)` : `exited with ${code}`}: ${(err || out).trim().split("\n").slice(-5).join(" | ")}`));
    });
  });
}
