// `warren broker`, run compiled (`node dist/src/cli/main.js broker ...`): its help, `status` of the
// shared broker and of a port where nothing listens, passwords never printed, and a project-local
// RabbitMQ that `start` runs on a spare port, reported by `status`, reached by amqplib with the
// address's credentials, and stopped by `stop`. The shared broker on 5672 is only ever probed.
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { once } from "node:events";
import { execFile } from "node:child_process";
import * as amqp from "amqplib";
import { waitForCondition } from "warren/testing";
import { DEFAULT_ADDRESS } from "../../src/transport";
import { processesWith } from "../helpers";

const ROOT = path.join(__dirname, "..", "..");
const CLI = path.join(ROOT, "dist", "src", "cli", "main.js");
const STATE_DIR = path.join(ROOT, ".warren", "broker");
const shared = process.env.WARREN_ADDRESS ?? DEFAULT_ADDRESS;
/** The port this file starts its own broker on, and one where nothing ever listens. */
const SPARE = 5790;
const QUIET = 5791;
const NODE = `warren-${SPARE}@localhost`;
const SECRET = "s3cret-Pw";
const spare = `amqp://warren:${SECRET}@127.0.0.1:${SPARE}`;

interface Run {
  code: number;
  output: string;
}

/** Runs `warren broker ...args` with only the given WARREN_* variables; never rejects. */
function broker(env: { WARREN_ADDRESS?: string; WARREN_BROKER_PORT?: string }, ...args: string[]): Promise<Run> {
  const base = { ...process.env };
  delete base.WARREN_ADDRESS;
  delete base.WARREN_BROKER_PORT;
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, "broker", ...args], { env: { ...base, ...env }, timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, output: stdout + stderr }));
  });
}

/** The processes of this file's node (the shared epmd, which its VM may have started, is left alone). */
function nodeProcesses(): number[] {
  return processesWith(`RABBITMQ_NODENAME=${NODE}`).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim() !== "epmd";
    } catch {
      return false;
    }
  });
}

/** Kills this file's node and removes its files under .warren/broker/ (nothing of other nodes). */
function removeNode(): void {
  for (const pid of nodeProcesses()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
  fs.rmSync(path.join(STATE_DIR, `${NODE}.pid`), { force: true });
  fs.rmSync(path.join(STATE_DIR, `rabbitmq-${SPARE}.conf`), { force: true });
  for (const dir of ["log", "mnesia"].map((d) => path.join(STATE_DIR, d)).filter((d) => fs.existsSync(d))) {
    for (const entry of fs.readdirSync(dir).filter((e) => e.startsWith(NODE))) fs.rmSync(path.join(dir, entry), { recursive: true, force: true });
  }
}

beforeAll(() => {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before these tests`);
  removeNode(); // a fresh node, whose default user is the address's
});

afterAll(() => removeNode());

describe("usage", () => {
  test.each([
    [[], /WARREN_BROKER_PORT +overrides the port of WARREN_ADDRESS/],
    [["start"], /Wait up to\s+60 s for it to answer/],
    [["stop"], /with rabbitmqctl, else with SIGTERM/],
    [["status"], /Exits 0 when the target address answers/],
  ])("warren broker %p --help", async (cmd, detail) => {
    const r = await broker({}, ...cmd, "--help");
    expect(r.code).toBe(0);
    expect(r.output).toContain(`Usage: warren broker${cmd.length ? ` ${cmd[0]}` : ""}`);
    expect(r.output).toMatch(detail);
  });

  test("the broker help names its three commands", async () => {
    const r = await broker({}, "--help");
    for (const c of ["start", "stop", "status"]) expect(r.output).toMatch(new RegExp(`^  ${c} `, "m"));
  });

  test.each([
    [{ WARREN_BROKER_PORT: "99999" }, /WARREN_BROKER_PORT must be a port number from 1 to 65535 \(got "99999"\)/],
    [{ WARREN_ADDRESS: `warren:${SECRET}@127.0.0.1:5672` }, /WARREN_ADDRESS must be an amqp:\/\/ or amqps:\/\/ URL/],
    [{ WARREN_ADDRESS: `amqp://warren:${SECRET}@127.0.0.1:99999` }, /WARREN_ADDRESS is not a valid URL/],
  ])("%p is a usage error (exit code 2) that does not echo the password", async (env, message) => {
    const r = await broker(env, "status");
    expect(r.output).toMatch(message);
    expect(r.output).not.toContain(SECRET);
    expect(r.code).toBe(2);
  });
});

describe("status and start against brokers this file does not run", () => {
  test("status of the shared broker says it answers", async () => {
    const r = await broker({ WARREN_ADDRESS: shared }, "status");
    expect(r.output).toMatch(/^broker: RabbitMQ answers at \S+:\d+$/m);
    expect(r.code).toBe(0);
  });

  test("start finds the shared broker answering and leaves it alone", async () => {
    const r = await broker({ WARREN_ADDRESS: shared }, "start");
    expect(r.output).toMatch(/^broker: RabbitMQ answers at \S+:\d+$/m);
    expect(r.output).not.toMatch(/starting RabbitMQ/);
    expect(r.code).toBe(0);
  });

  test("status where nothing listens says so, exits 1, and never shows the password", async () => {
    const r = await broker({ WARREN_ADDRESS: `amqp://warren:${SECRET}@127.0.0.1:${QUIET}/vh` }, "status");
    expect(r.output).toContain(`broker: nothing answers at 127.0.0.1:${QUIET}`);
    expect(r.output).toContain(`broker: project-local node warren-${QUIET}@localhost does not run`);
    expect(r.output).not.toContain(SECRET);
    expect(r.code).toBe(1);
  });

  test("WARREN_BROKER_PORT replaces the port of WARREN_ADDRESS", async () => {
    const r = await broker({ WARREN_ADDRESS: `amqp://warren:${SECRET}@127.0.0.1:5672`, WARREN_BROKER_PORT: String(QUIET) }, "status");
    expect(r.output).toContain(`nothing answers at 127.0.0.1:${QUIET}`);
    expect(r.code).toBe(1);
  });

  test("start cannot start a remote broker: exit 1, a redacted address", async () => {
    const r = await broker({ WARREN_ADDRESS: `amqp://warren:${SECRET}@broker.invalid:5672` }, "start");
    expect(r.output).toContain("the remote broker at broker.invalid:5672 does not answer (WARREN_ADDRESS=amqp://warren:***@broker.invalid:5672)");
    expect(r.output).not.toContain(SECRET);
    expect(r.code).toBe(1);
  });

  test("start refuses a port whose management port is taken, and starts nothing", async () => {
    const taken = net.createServer().listen(QUIET + 10000, "127.0.0.1");
    await once(taken, "listening");
    try {
      const r = await broker({ WARREN_BROKER_PORT: String(QUIET) }, "start");
      expect(r.output).toContain(`cannot start node warren-${QUIET}@localhost on port ${QUIET}: already in use on 127.0.0.1: ${QUIET + 10000} (management)`);
      expect(r.output).toContain("Pick another port with WARREN_BROKER_PORT");
      expect(r.code).toBe(1);
      expect(processesWith(`RABBITMQ_NODENAME=warren-${QUIET}@localhost`)).toEqual([]);
      expect(fs.existsSync(path.join(STATE_DIR, `rabbitmq-${QUIET}.conf`))).toBe(false);
    } finally {
      taken.close();
    }
  });

  test("stop with no project-local broker on the port has nothing to stop", async () => {
    const r = await broker({ WARREN_BROKER_PORT: String(QUIET) }, "stop");
    expect(r.output).toContain(`no project-local broker runs for port ${QUIET} (node warren-${QUIET}@localhost); nothing to stop`);
    expect(r.code).toBe(0);
  });
});

describe(`a project-local broker on port ${SPARE}`, () => {
  const env = { WARREN_ADDRESS: spare, WARREN_BROKER_PORT: String(SPARE) };
  const pidFile = path.join(STATE_DIR, `${NODE}.pid`);

  test("start starts one and says where it is, without the password", async () => {
    const r = await broker(env, "start");
    expect(r.output).toContain(`broker: nothing answers at 127.0.0.1:${SPARE}: starting RabbitMQ node ${NODE}`);
    expect(r.output).toMatch(new RegExp(`waiting for 127.0.0.1:${SPARE} \\.* up`));
    expect(r.output).toContain(`broker: AMQP address:  amqp://warren:***@127.0.0.1:${SPARE} (node ${NODE})`);
    expect(r.output).toContain(`broker: management UI: http://127.0.0.1:${SPARE + 10000} (user warren, the address's password)`);
    expect(r.output).toContain(`broker: stop it with:  WARREN_BROKER_PORT=${SPARE} warren broker stop`);
    expect(r.output).not.toContain(SECRET);
    expect(r.code).toBe(0);
    expect(nodeProcesses().length).toBeGreaterThan(0);
    expect(fs.readFileSync(path.join(STATE_DIR, `rabbitmq-${SPARE}.conf`), "utf8")).toMatch(new RegExp(`^listeners\\.tcp\\.default = 127\\.0\\.0\\.1:${SPARE}$`, "m"));
  }, 150_000);

  test("status reports it answering and its node running under the pid it wrote", async () => {
    const r = await broker(env, "status");
    const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
    expect(nodeProcesses()).toContain(pid);
    expect(r.output).toContain(`broker: RabbitMQ answers at 127.0.0.1:${SPARE}`);
    expect(r.output).toContain(`broker: project-local node ${NODE} runs (pid ${pid}; AMQP 127.0.0.1:${SPARE}`);
    expect(r.code).toBe(0);
  });

  test("amqplib connects with the address's user and password, which the new node was given", async () => {
    const conn = await amqp.connect(spare);
    try {
      const ch = await conn.createChannel();
      const { queue } = await ch.assertQueue("", { exclusive: true });
      ch.sendToQueue(queue, Buffer.from("hello"));
      await waitForCondition(async () => (await ch.checkQueue(queue)).messageCount === 1);
    } finally {
      await conn.close();
    }
  });

  test("start again finds it answering", async () => {
    const r = await broker(env, "start");
    expect(r.output).toContain(`broker: RabbitMQ answers at 127.0.0.1:${SPARE}`);
    expect(r.output).not.toMatch(/starting RabbitMQ/);
    expect(r.code).toBe(0);
  });

  test("stop stops it, and only it: its processes are gone, the shared broker still answers", async () => {
    const r = await broker(env, "stop");
    expect(r.output).toMatch(new RegExp(`broker: stopping RabbitMQ node ${NODE} \\(pid \\d+\\)`));
    expect(r.output).toContain("broker: stopped");
    expect(r.code).toBe(0);
    await waitForCondition(() => nodeProcesses().length === 0, 30);

    const after = await broker(env, "status");
    expect(after.output).toContain(`broker: nothing answers at 127.0.0.1:${SPARE}`);
    expect(after.output).toContain(`broker: project-local node ${NODE} does not run`);
    expect(after.code).toBe(1);
    expect((await broker({ WARREN_ADDRESS: shared }, "status")).code).toBe(0);
  }, 150_000);
});
