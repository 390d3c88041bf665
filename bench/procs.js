// Finding a warren cluster's processes on this machine and reading their resident memory, from
// Linux /proc (the technique of test/helpers.ts `processesWith`): a node daemon has WARREN_NODE in
// its environment and a worker WARREN_WORKER, both naming the cluster. Plain JavaScript so the
// lean idle-memory driver (idle_memory.js) can use it without a TypeScript loader.
"use strict";
const fs = require("node:fs");

const NODE_BINARY = safe(() => fs.realpathSync(process.execPath));

function safe(fn) {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

/** A `/proc/<pid>/status` field in KiB (VmRSS, RssFile...), or undefined if the process is gone. */
function statusKiB(pid, field) {
  const status = safe(() => fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  const m = status && new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(status);
  return m ? Number(m[1]) : undefined;
}

/** VmRSS of `pid` in KiB, or undefined if it is gone. */
function rssKiB(pid) {
  return statusKiB(pid, "VmRSS");
}

/** The node daemons and workers of `cluster` (node processes only; a zombie is gone). */
function clusterProcesses(cluster) {
  const nodes = [];
  const workers = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const stat = safe(() => fs.readFileSync(`/proc/${entry}/stat`, "utf8"));
    if (!stat || stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
    const environ = safe(() => fs.readFileSync(`/proc/${entry}/environ`, "latin1"));
    if (!environ || !environ.includes(cluster)) continue;
    // Only node processes: a helper a worker spawned (esbuild, a user's child) inherits the env too.
    if (NODE_BINARY && safe(() => fs.realpathSync(`/proc/${entry}/exe`)) !== NODE_BINARY) continue;
    const vars = environ.split("\0");
    if (vars.some((v) => v.startsWith("WARREN_WORKER=") && v.includes(cluster))) workers.push(Number(entry));
    else if (vars.some((v) => v.startsWith("WARREN_NODE=") && v.includes(cluster))) nodes.push(Number(entry));
  }
  return { nodes, workers };
}

/**
 * RSS in MiB of the driver (`driverPid`), the cluster's node daemon(s) and each worker, and the
 * total of all of them.
 */
function memorySnapshot(cluster, driverPid = process.pid) {
  const { nodes, workers } = clusterProcesses(cluster);
  const mib = (kib) => Math.round(((kib ?? 0) / 1024) * 10) / 10;
  const driver = mib(rssKiB(driverPid));
  // Of the driver's RSS, pages of mapped files: mostly the LMDB object store's map after large puts.
  const driverFile = mib(statusKiB(driverPid, "RssFile"));
  const node = mib(nodes.reduce((s, p) => s + (rssKiB(p) ?? 0), 0));
  const workerList = workers.map((pid) => ({ pid, rssMiB: mib(rssKiB(pid)) })).sort((a, b) => a.pid - b.pid);
  const total = Math.round((driver + node + workerList.reduce((s, w) => s + w.rssMiB, 0)) * 10) / 10;
  return { driverMiB: driver, driverFileMiB: driverFile, nodeMiB: node, nodePids: nodes, workers: workerList, totalMiB: total };
}

module.exports = { rssKiB, statusKiB, clusterProcesses, memorySnapshot };
