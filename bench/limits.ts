/**
 * The raw round-trip limit's client: a bare amqplib request/reply to one echo process
 * (bench/echo.js) over the same broker as warren, with direct reply-to and Nagle off. Owns the
 * echo process: it is forked here and killed by `close()` or `kill()`. Nothing of warren's may
 * come in here, or the limit would measure warren too.
 */
import { ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as path from "node:path";
import * as amqp from "amqplib";

const ADDRESS = process.env.WARREN_ADDRESS ?? "amqp://guest:guest@127.0.0.1:5672";

/** The raw limit's client: publishes to the echo process's queue, replies by direct reply-to. */
export class Echo {
  private readonly pending = new Map<string, () => void>();
  private seq = 0;
  private static readonly PAYLOAD = Buffer.alloc(64, 1);

  private constructor(
    private readonly proc: ChildProcess,
    private readonly conn: amqp.ChannelModel,
    private readonly ch: amqp.Channel,
    private readonly queue: string,
  ) {}

  static async start(): Promise<Echo> {
    const queue = `warren-bench-echo-${randomBytes(6).toString("hex")}`;
    const proc = fork(path.join(__dirname, "echo.js"), [queue], {
      env: { ...process.env, WARREN_BENCH_ECHO_ADDRESS: ADDRESS }, // not in argv, where ps shows it
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("the echo process did not start within 20 s")), 20_000);
        proc.once("exit", (code, signal) => { clearTimeout(timer); reject(new Error(`the echo process exited (${signal ?? code}) while starting`)); });
        proc.on("message", (m: { t?: string }) => { if (m?.t === "ready") { clearTimeout(timer); resolve(); } });
      });
      const conn = await amqp.connect(ADDRESS, { noDelay: true, clientProperties: { connection_name: "warren bench echo client" } });
      conn.on("error", () => undefined);
      const ch = await conn.createChannel();
      ch.on("error", () => undefined);
      const echo = new Echo(proc, conn, ch, queue);
      await ch.consume("amq.rabbitmq.reply-to", (msg) => {
        if (!msg) return;
        const done = echo.pending.get(msg.properties.correlationId);
        echo.pending.delete(msg.properties.correlationId);
        done?.();
      }, { noAck: true });
      return echo;
    } catch (err) {
      proc.kill("SIGKILL");
      throw err;
    }
  }

  call(): Promise<void> {
    const id = String(++this.seq);
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.ch.publish("", this.queue, Echo.PAYLOAD, { replyTo: "amq.rabbitmq.reply-to", correlationId: id });
    });
  }

  async close(): Promise<void> {
    await this.ch.close().catch(() => undefined);
    await this.conn.close().catch(() => undefined);
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((r) => this.proc.once("exit", r));
      this.proc.kill("SIGTERM");
      const timer = setTimeout(() => this.proc.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
    }
  }

  kill(): void {
    this.proc.kill("SIGKILL");
  }
}
