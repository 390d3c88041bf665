/**
 * `npm run bench -- --durable`: the sync and pipelined task and actor cases in durable mode
 * (init({ durable: true }): quorum queues, persistent task messages with confirms), judged
 * against a raw round trip through a quorum queue with confirms, on a 3-node RabbitMQ cluster of
 * the benchmark's own on one machine (`warren broker start --nodes 3` on WARREN_BENCH_DURABLE_PORT,
 * default 5786, to 5788), stopped and removed afterwards. Target (DESIGN.md): each case at least
 * 0.5 of its raw quorum limit.
 */
import { execFile } from "node:child_process";
import * as path from "node:path";

export const DURABLE_CASES = [
  "raw_roundtrip_sequential", "raw_roundtrip_pipelined",
  "single_client_tasks_sync", "single_client_tasks_async",
  "1_1_actor_calls_sync", "1_1_actor_calls_async",
];
export const DURABLE_TARGET = { minRatio: 0.5 };

const CLI = path.join(__dirname, "..", "dist", "src", "cli", "main.js");
const NODES = 3;

function broker(port: number, command: "start" | "stop"): Promise<void> {
  const env = { ...process.env, WARREN_BROKER_PORT: String(port), WARREN_ADDRESS: `amqp://guest:guest@127.0.0.1:${port}` };
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, "broker", command, "--nodes", String(NODES)], { env, timeout: 180_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`warren broker ${command} --nodes ${NODES} failed:\n${stdout}${stderr}`)) : resolve());
  });
}

/** Starts the cluster; returns its address list and how to remove it. */
export async function startDurableCluster(): Promise<{ address: string; stop(): Promise<void> }> {
  const port = Number(process.env.WARREN_BENCH_DURABLE_PORT ?? 5786);
  process.stderr.write(`durable mode: starting a ${NODES}-node RabbitMQ cluster on ports ${port}-${port + NODES - 1}...\n`);
  await broker(port, "start");
  const address = Array.from({ length: NODES }, (_, i) => `amqp://guest:guest@127.0.0.1:${port + i}`).join(",");
  return { address, stop: () => broker(port, "stop") };
}
