// The memory target's situation, measured on its own: a fresh plain-JavaScript driver that calls
// `init({ numCpus: 4 })` and does nothing else, its node daemon, and the node's 4 idle
// (prestarted) workers. Waits until the 4 workers exist and their RSS has settled, prints one
// JSON line (procs.js `memorySnapshot`) on stdout, shuts down. bench/memory.ts runs it as a child
// process so the benchmark's own heap does not count as "a driver".
"use strict";
const warren = require("warren");
const { clusterProcesses, memorySnapshot } = require("./procs");

const WORKERS = 4;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const info = await warren.init({ numCpus: WORKERS, logToDriver: false });
  try {
    const deadline = Date.now() + 30_000;
    while (clusterProcesses(info.cluster).workers.length < WORKERS) {
      if (Date.now() > deadline) throw new Error(`only ${clusterProcesses(info.cluster).workers.length} of ${WORKERS} workers started in 30 s`);
      await sleep(100);
    }
    // Workers exist before they have loaded and connected (about 1 s here): wait at least 2 s,
    // then until the workers' RSS stops growing (two samples 500 ms apart within 1%), 15 s at most.
    const workersMiB = () => memorySnapshot(info.cluster).workers.reduce((s, w) => s + w.rssMiB, 0);
    await sleep(2000);
    let last = workersMiB();
    for (let i = 0; i < 26; i++) {
      await sleep(500);
      const now = workersMiB();
      if (Math.abs(now - last) <= 0.01 * last) break;
      last = now;
    }
    const snap = memorySnapshot(info.cluster);
    process.stdout.write(JSON.stringify(snap) + "\n");
  } finally {
    await warren.shutdown();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`idle_memory: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  },
);
