// Black-box probes the integration tests use: broker queues and live processes.
import { randomUUID } from "node:crypto";
import * as http from "node:http";
import * as net from "node:net";
import type { ChildProcess } from "node:child_process";
import * as amqp from "amqplib";
import { processesWith as findProcesses } from "../src/node/processes";
import { DEFAULT_ADDRESS } from "../src/transport";

/** Whether a queue or exchange exists on the broker (a passive declare on a throwaway channel). */
export async function brokerHas(kind: "queue" | "exchange", name: string): Promise<boolean> {
  const conn = await amqp.connect(process.env.WARREN_ADDRESS ?? DEFAULT_ADDRESS);
  try {
    const ch = await conn.createChannel();
    ch.on("error", () => undefined);
    try {
      if (kind === "queue") await ch.checkQueue(name);
      else await ch.checkExchange(name);
      await ch.close();
      return true;
    } catch {
      return false;
    }
  } finally {
    await conn.close();
  }
}

/**
 * For a test file on the bare broker: a connection, a channel and an exclusive queue on it, made
 * before the file's tests and closed after them. More channels come from `conn`.
 */
export function brokerQueue(what: string): { conn: amqp.ChannelModel; ch: amqp.Channel; queue: string } {
  const b = { queue: `warren.test.${what}.${randomUUID()}` } as { conn: amqp.ChannelModel; ch: amqp.Channel; queue: string };
  beforeAll(async () => {
    b.conn = await amqp.connect(process.env.WARREN_ADDRESS ?? DEFAULT_ADDRESS);
    b.ch = await b.conn.createChannel();
    await b.ch.assertQueue(b.queue, { exclusive: true });
  });
  afterAll(() => b.conn.close());
  return b;
}

export async function consumerCount(queue: string): Promise<number> {
  const conn = await amqp.connect(process.env.WARREN_ADDRESS ?? DEFAULT_ADDRESS);
  try {
    const ch = await conn.createChannel();
    return (await ch.checkQueue(queue)).consumerCount;
  } finally {
    await conn.close();
  }
}

/** Pids of live processes whose environment mentions `text` (Linux /proc). */
export function processesWith(text: string): number[] {
  return findProcesses(text) ?? [];
}

/** Runs `fn` with this process's stdout captured (still a jest spy), and returns what was written. */
export async function captureStdout(fn: () => Promise<unknown>): Promise<string> {
  const chunks: string[] = [];
  const spy = jest.spyOn(process.stdout, "write").mockImplementation((c: unknown) => {
    chunks.push(String(c));
    return true;
  });
  try {
    await fn();
  } finally {
    spy.mockRestore();
  }
  return chunks.join("");
}

/** The first line a child process prints on stdout; rejects if it exits before. */
export function firstLine(proc: ChildProcess): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let out = "";
    proc.stdout!.on("data", (c) => {
      out += c;
      if (out.includes("\n")) resolve(out.split("\n")[0]);
    });
    proc.once("exit", (code) => reject(new Error(`the process exited (${code}) before printing a line`)));
  });
}

/** A plain GET on 127.0.0.1 (a node's metrics endpoint). */
export function httpGet(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body }));
    }).on("error", reject);
  });
}

/** The value of the first sample of `name` with these labels in Prometheus text, e.g. `warren_node_workers{node_id="n1"} 3`. */
export function sample(body: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of body.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** A TCP port of 127.0.0.1 nothing listens on (a moment ago). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}
