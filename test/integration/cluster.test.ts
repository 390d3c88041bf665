// Cluster lifetime: init, shutdown and what they leave behind; clusters sharing one broker.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFile } from "node:child_process";
import * as warren from "warren";
import { add, pid, sleep } from "../fixtures/tasks";
import { Counter } from "../fixtures/actors";
import { clusterDir } from "../../src/core/paths";
import { waitForCondition } from "warren/testing";
import { brokerHas, consumerCount, processesWith } from "../helpers";

afterEach(() => warren.shutdown());

test("calling warren before init() is a clear error, not a hang", async () => {
  expect(warren.isInitialized()).toBe(false);
  expect(() => add.remote(1, 2)).toThrow(/call `await warren.init\(\)` first/);
  expect(() => warren.put(1)).toThrow(warren.WarrenError);
});

test("an unreachable broker is a BrokerUnavailableError naming the address and the fix", async () => {
  const err = await warren.init({ address: "amqp://guest:secret@127.0.0.1:1" }).catch((e) => e);
  expect(err).toBeInstanceOf(warren.BrokerUnavailableError);
  expect(err.message).toContain("127.0.0.1:1");
  expect(err.message).toContain("npx warren broker start"); // works in a consumer, where `npm run broker` does not
  expect(err.message).toContain("--address on the warren CLI");
  expect(err.message).not.toContain("secret");
  expect(warren.isInitialized()).toBe(false);
});

test("several broker URLs: each is tried in turn, and every process of the cluster uses the first that answers", async () => {
  const address = ["amqp://guest:first@127.0.0.1:1", process.env.WARREN_ADDRESS ?? "amqp://guest:guest@127.0.0.1:5672"];
  const info = await warren.init({ address, numCpus: 1 });
  expect(info.address).toBe(address.join(","));
  expect(await warren.get(add.remote(2, 3))).toBe(5); // the node and its worker reached the broker too
  await warren.shutdown();
});

test("no broker of a list answering is a BrokerUnavailableError naming them all, passwords hidden", async () => {
  const err = await warren.init({ address: "amqp://u:first@127.0.0.1:1,amqp://v:second@127.0.0.1:2" }).catch((e) => e);
  expect(err).toBeInstanceOf(warren.BrokerUnavailableError);
  expect(err.message).toContain("amqp://u:***@127.0.0.1:1,amqp://v:***@127.0.0.1:2");
  expect(err.message).not.toMatch(/first|second/);
  expect(warren.isInitialized()).toBe(false);
});

test("refused credentials are a BrokerAuthError that says what to check, password hidden", async () => {
  const err = await warren.init({ address: "amqp://guest:wrong-secret@127.0.0.1:5672" }).catch((e) => e);
  expect(err).toBeInstanceOf(warren.BrokerAuthError);
  expect(err.message).toContain("refused its user and password");
  expect(err.message).not.toContain("wrong-secret");
  expect(warren.isInitialized()).toBe(false);
});

test("joining a cluster that does not run is a clear error that leaves nothing on the broker", async () => {
  const name = `nowhere-${process.pid}-${Date.now()}`;
  await expect(warren.init({ cluster: name })).rejects.toThrow(new RegExp(`no cluster "${name}" answers on .*warren start --head --cluster ${name}`));
  expect(warren.isInitialized()).toBe(false);
  for (const ex of ["tasks", "control", "logs"]) expect(await brokerHas("exchange", `warren.${name}.${ex}`)).toBe(false);
});

test("init options are validated", async () => {
  await expect(warren.init({ numCpus: -2, address: "http://x" } as never)).rejects.toThrow(/numCpus.*address|address.*numCpus/s);
});

test("shutdown leaves no process, queue, exchange or LMDB file behind, only its logs", async () => {
  const info = await warren.init({ numCpus: 2 });
  expect(warren.isInitialized()).toBe(true);
  await expect(warren.init()).rejects.toThrow(/already called/);
  expect(await warren.get(add.remote(1, 2))).toBe(3);
  warren.put(Buffer.alloc(1 << 20)); // into LMDB
  const prefix = `warren.${info.cluster}`;
  const sessionDir = path.join(os.tmpdir(), "warren", `session_${info.cluster}`);
  expect(processesWith(info.cluster).length).toBeGreaterThanOrEqual(2); // the node and its workers
  expect(await brokerHas("queue", `${prefix}.shape.CPU:1`)).toBe(true);
  expect(fs.existsSync(path.join(sessionDir, "objects.lmdb"))).toBe(true);

  await warren.shutdown();
  expect(warren.isInitialized()).toBe(false);
  expect(processesWith(info.cluster)).toEqual([]);
  expect(await brokerHas("queue", `${prefix}.shape.CPU:1`)).toBe(false);
  expect(await brokerHas("queue", `${prefix}.inbox.${info.jobId}`)).toBe(false);
  for (const ex of ["tasks", "control", "logs"]) expect(await brokerHas("exchange", `${prefix}.${ex}`)).toBe(false);
  // Its logs stay, as Ray's session_latest, until the next private cluster's replace them.
  expect(fs.readdirSync(sessionDir).sort()).toEqual(["logs", "node.log"]);
  expect(fs.readlinkSync(path.join(os.tmpdir(), "warren", "session_latest"))).toBe(`session_${info.cluster}`);
  expect(() => add.remote(1, 2)).toThrow(/init/);
});

test("if the node a driver started dies, its pending and later calls fail clearly instead of hanging, and shutdown() removes the queues it left", async () => {
  const info = await warren.init({ numCpus: 1 });
  expect(await warren.get(add.remote(1, 2))).toBe(3);
  const counters = [Counter.remote(), Counter.options({ process: "shared" }).remote()];
  expect(await warren.get(counters.map((c) => c.increment.remote()))).toEqual([1, 1]);
  const prefix = `warren.${info.cluster}`;
  const left = [...counters.map((c) => `${prefix}.mailbox.Counter.${c.actorId}`), `${prefix}.shape.CPU:1`];
  for (const q of left) expect(await brokerHas("queue", q)).toBe(true);
  const running = sleep.remote(60);
  const nodePid = processesWith(info.cluster).find((p) => fs.readFileSync(`/proc/${p}/cmdline`, "utf8").startsWith("warren::node"));
  expect(nodePid).toBeDefined();
  process.kill(nodePid!, "SIGKILL");
  const err = await warren.get(running).catch((e) => e);
  expect(err).toBeInstanceOf(warren.NodeDiedError);
  expect(err.message).toMatch(/exited \(SIGKILL\).*shutdown\(\)/s);
  expect(() => add.remote(1, 2)).toThrow(warren.NodeDiedError);
  await warren.shutdown();
  expect(warren.isInitialized()).toBe(false);
  await waitForCondition(() => processesWith(info.cluster).length === 0, 10);
  for (const q of left) expect(await brokerHas("queue", q)).toBe(false);
  expect(await brokerHas("exchange", `${prefix}.tasks`)).toBe(false);
  expect(fs.readdirSync(clusterDir(info.cluster))).toContain("logs"); // its logs stay
});

test("two clusters on one broker never see each other's tasks", async () => {
  const info = await warren.init({ numCpus: 2 });
  const other = new Promise<{ cluster: string; pids: number[] }>((resolve, reject) => {
    execFile(process.execPath, ["-r", "tsx/cjs", path.join(__dirname, "..", "fixtures", "other_driver.ts")], (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout.trim().split("\n").pop()!)));
  });
  const mine = new Set<number>();
  for (let i = 0; i < 20; i++) for (const p of await warren.get(Array.from({ length: 10 }, () => pid.remote()))) mine.add(p);
  const theirs = await other;
  expect(theirs.cluster).not.toBe(info.cluster);
  expect(theirs.pids.filter((p) => mine.has(p))).toEqual([]);
  expect(await consumerCount(`warren.${info.cluster}.shape.CPU:1`)).toBe(1); // only our own node
});
