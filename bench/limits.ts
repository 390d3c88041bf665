/**
 * The raw round-trip limit's client: a bare amqplib request/reply to one echo process
 * (bench/echo.js) over the same broker as warren, with direct reply-to and Nagle off. Owns the
 * echo process: it is forked here and killed by `close()` or `kill()`. Nothing of warren's may
 * come in here, or the limit would measure warren too. For durable mode (`quorum`) the echo's
 * queue is a quorum queue, and each request is persistent, published on a confirm channel: a
 * round trip is over when both its confirm and its reply have come.
 */
import { ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as path from "node:path";
import * as amqp from "amqplib";


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
    private readonly confirmed: amqp.ConfirmChannel | undefined,
  ) {}

  /** `address`: the first URL of a list is the one the echo and its client use. */
  static async start(address: string, quorum = false): Promise<Echo> {
    const url = address.split(",")[0];
    const queue = `warren-bench-echo-${randomBytes(6).toString("hex")}`;
    const proc = fork(path.join(__dirname, "echo.js"), [queue], {
      env: { ...process.env, WARREN_BENCH_ECHO_ADDRESS: url, WARREN_BENCH_ECHO_QUORUM: quorum ? "1" : "0" }, // not in argv, where ps shows it
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("the echo process did not start within 20 s")), 20_000);
        proc.once("exit", (code, signal) => { clearTimeout(timer); reject(new Error(`the echo process exited (${signal ?? code}) while starting`)); });
        proc.on("message", (m: { t?: string }) => { if (m?.t === "ready") { clearTimeout(timer); resolve(); } });
      });
      const conn = await amqp.connect(url, { noDelay: true, clientProperties: { connection_name: "warren bench echo client" } });
      conn.on("error", () => undefined);
      // Direct reply-to answers only on the channel that consumes it: a confirm channel in durable mode.
      const confirmed = quorum ? await conn.createConfirmChannel() : undefined;
      const ch = confirmed ?? (await conn.createChannel());
      ch.on("error", () => undefined);
      const echo = new Echo(proc, conn, ch, queue, confirmed);
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
    const replied = new Promise<void>((resolve) => this.pending.set(id, resolve));
    const props = { replyTo: "amq.rabbitmq.reply-to", correlationId: id };
    if (!this.confirmed) {
      this.ch.publish("", this.queue, Echo.PAYLOAD, props);
      return replied;
    }
    const confirm = new Promise<void>((resolve, reject) =>
      this.confirmed!.publish("", this.queue, Echo.PAYLOAD, { ...props, persistent: true }, (err) => (err ? reject(err) : resolve())));
    return Promise.all([confirm, replied]).then(() => undefined);
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
