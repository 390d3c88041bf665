// transport/frames.ts on the real broker: small publishes warren encodes, and deliveries warren
// reads, are what amqplib's own publish and reading make of the same messages, in order; the
// probe turns every fast path on with the pinned amqplib, and WARREN_AMQP_FAST_PATHS=0 turns them
// all off, in this process and in a cluster's, which then run on amqplib alone.
import * as fs from "node:fs";
import * as path from "node:path";
import { execFile } from "node:child_process";
import * as amqp from "amqplib";
import { brokerAddress, connectBroker } from "../../src/transport";
import { FAST_PATHS_ENV, fastPathUse, fastPaths, publishSmall } from "../../src/transport/frames";

/** A consumer of its own exclusive queue, on a connection warren tuned or on plain amqplib. */
interface Reader { conn: amqp.ChannelModel; ch: amqp.Channel; queue: string; arrived: amqp.ConsumeMessage[]; waiters: (() => void)[] }

async function reader(tuned: boolean): Promise<Reader> {
  const conn = tuned ? await connectBroker(brokerAddress(), "warren frames test") : await amqp.connect(brokerAddress());
  const ch = await conn.createChannel();
  const queue = (await ch.assertQueue("", { exclusive: true })).queue;
  const r: Reader = { conn, ch, queue, arrived: [], waiters: [] };
  await ch.consume(queue, (m) => {
    if (!m) return;
    r.arrived.push(m);
    for (const w of r.waiters.splice(0)) w();
  }, { noAck: true });
  return r;
}

async function take(r: Reader, n: number): Promise<amqp.ConsumeMessage[]> {
  while (r.arrived.length < n) await new Promise<void>((w) => r.waiters.push(w));
  return r.arrived.splice(0, n);
}

let tuned: Reader;
let plain: Reader;
/** How many frames amqplib's own message reading took on the tuned channel. */
let amqplibFrames = 0;

/** The off switch as this file found it: the tests set it themselves. */
const switchAsFound = process.env[FAST_PATHS_ENV];

beforeAll(async () => {
  delete process.env[FAST_PATHS_ENV];
  tuned = await reader(true);
  plain = await reader(false);
  const internals = tuned.ch as unknown as { acceptMessageFrame(f: unknown): void };
  const accept = internals.acceptMessageFrame.bind(internals);
  internals.acceptMessageFrame = (f) => {
    amqplibFrames++;
    accept(f);
  };
});
afterAll(async () => {
  if (switchAsFound !== undefined) process.env[FAST_PATHS_ENV] = switchAsFound;
  await tuned.conn.close();
  await plain.conn.close();
});

/** What a consumer sees of a message, but for what differs between two queues. */
const seen = (m: amqp.ConsumeMessage) => ({
  content: m.content.toString("latin1"),
  properties: m.properties,
  redelivered: m.fields.redelivered,
  exchange: m.fields.exchange,
});

test("a message with each property arrives as amqplib would have sent it, and is read as amqplib would read it", async () => {
  const props = { messageId: "0123abcd", type: "small_value", correlationId: "42", replyTo: "somewhere", mandatory: true };
  const body = Buffer.from([0, 1, 2, 255, 0xce]);
  for (const p of [props, { type: "only-type" }, {}, { messageId: "é ü" }]) {
    const { mandatory: _, ...sent } = p as typeof props;
    amqplibFrames = 0;
    for (const r of [tuned, plain]) publishSmall(tuned.ch, "", r.queue, body, p);
    const [mine] = await take(tuned, 1);
    const [plainMine] = await take(plain, 1);
    expect(amqplibFrames).toBe(0); // read by warren
    expect(seen(mine)).toEqual(seen(plainMine)); // as amqplib reads the same bytes
    expect(mine.fields.routingKey).toBe(tuned.queue);
    expect(mine.properties).toMatchObject(sent);
    expect(mine.content.equals(body)).toBe(true);

    // amqplib's publish always adds an empty headers table: otherwise the same message.
    tuned.ch.publish("", tuned.queue, body, sent);
    const [theirs] = await take(tuned, 1);
    expect(seen(theirs)).toEqual({ ...seen(mine), properties: { ...mine.properties, headers: {} } });
  }
});

test("a burst keeps its order through both writers and both readers, frames split across socket reads", async () => {
  amqplibFrames = 0;
  const body = (i: number) => Buffer.from(`${i}:`.padEnd(3000 + (i % 17) * 100, "x"));
  for (let i = 0; i < 600; i++) {
    if (i % 7 === 0) tuned.ch.publish("", tuned.queue, body(i));
    else if (i % 11 === 0) tuned.ch.publish("", tuned.queue, body(i), { headers: { i } });
    else publishSmall(tuned.ch, "", tuned.queue, body(i), { type: "n" });
  }
  const got = await take(tuned, 600);
  got.forEach((m, i) => expect(m.content.equals(body(i))).toBe(true));
  const byAmqplib = Array.from({ length: 600 }, (_, i) => i).filter((i) => i % 7 === 0 || i % 11 === 0).length;
  expect(amqplibFrames).toBe(byAmqplib * 3); // amqplib's publishes carry headers: read by amqplib, three frames each
});

test("what it cannot write or read goes through amqplib: a body larger than a frame, an empty one, headers", async () => {
  const big = Buffer.alloc(300 * 1024, 7);
  publishSmall(tuned.ch, "", tuned.queue, big, { type: "big" });
  publishSmall(tuned.ch, "", tuned.queue, Buffer.alloc(0), { type: "empty" });
  tuned.ch.publish("", tuned.queue, Buffer.from("h"), { headers: { a: 1, b: "two" } });
  const [a, b, c] = await take(tuned, 3);
  expect(a.content.equals(big)).toBe(true);
  expect(b.content.length).toBe(0);
  expect(b.properties.type).toBe("empty");
  expect(c.properties.headers).toEqual({ a: 1, b: "two" });
});

test("a mandatory message nobody takes comes back; a closed channel raises amqplib's error", async () => {
  const returned = new Promise<amqp.Message>((resolve) => tuned.ch.once("return", resolve));
  publishSmall(tuned.ch, "", `warren.test.nobody.${Date.now()}`, Buffer.from("x"), { messageId: "lost", mandatory: true });
  expect((await returned).properties.messageId).toBe("lost");

  const closed = await tuned.conn.createChannel();
  await closed.close();
  expect(() => publishSmall(closed, "", tuned.queue, Buffer.from("x"))).toThrow(/closed/i);
});

test("a consumer that throws closes its channel, as with amqplib", async () => {
  const ch = await tuned.conn.createChannel();
  const q = (await ch.assertQueue("", { exclusive: true })).queue;
  const closed = new Promise<Error>((resolve) => ch.on("error", resolve));
  await ch.consume(q, () => { throw new Error("consumer bug"); }, { noAck: true });
  publishSmall(tuned.ch, "", q, Buffer.from("x"), { type: "t" });
  expect((await closed).message).toMatch(/consumer bug|processing message/);
});

// ---- the probe and the off switch -----------------------------------------------------------

const ROOT = path.join(__dirname, "..", "..");
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, "utf8"));
/** The installed amqplib's version (its package.json is not among its exports). */
const installed: string = readJson(path.join(path.dirname(require.resolve("amqplib")), "package.json")).version;

/** amqplib's Connection under a ChannelModel, as far as these tests look at it. */
type Internals = { recvFrame: unknown; freshChannel: unknown; sendMessage: (...a: unknown[]) => unknown; stream: object; channels: { buffer: object }[] };
const internalsOf = (conn: amqp.ChannelModel) => (conn as unknown as { connection: Internals }).connection;
const bufferOf = (r: Reader) => internalsOf(r.conn).channels[(r.ch as unknown as { ch: number }).ch].buffer;

test("with the pinned amqplib every fast path runs on a real connection", async () => {
  const pinned = readJson(path.join(ROOT, "package.json")).dependencies.amqplib;
  const lock = readJson(path.join(ROOT, "package-lock.json"));
  expect(pinned).toBe(`~${installed}`); // the tested minor, from the installed patch on
  expect(lock.packages[""].dependencies.amqplib).toBe(pinned);
  expect(lock.packages["node_modules/amqplib"].version).toBe(installed);

  expect(fastPaths(tuned.conn)).toEqual({ directWrites: true, smallPublish: true, deliveryReader: true, amqplib: installed, reasons: [] });
  const c = internalsOf(tuned.conn);
  expect(Object.hasOwn(c, "freshChannel") && Object.hasOwn(c, "recvFrame")).toBe(true);
  expect(Object.hasOwn(bufferOf(tuned), "write")).toBe(true);
  const before = fastPathUse();
  publishSmall(tuned.ch, "", tuned.queue, Buffer.from("x"), { type: "t" });
  await take(tuned, 1);
  const after = fastPathUse();
  expect(after.smallPublishes).toBe(before.smallPublishes + 1);
  expect(after.directWrites).toBe(before.directWrites + 1);
  expect(after.deliveriesRead).toBe(before.deliveriesRead + 1);
});

test("an internal that differs turns off the paths that need it, and says which", async () => {
  const conn = await amqp.connect(brokerAddress());
  const stream = internalsOf(conn).stream;
  Object.defineProperty(stream, "cork", { value: undefined, configurable: true });
  try {
    expect(fastPaths(conn)).toEqual({
      directWrites: false, smallPublish: true, deliveryReader: true, amqplib: installed,
      reasons: ["Connection#stream cork()/uncork()/write() differs (directWrites off)"],
    });
  } finally {
    delete (stream as { cork?: unknown }).cork;
    await conn.close();
  }
});

test(`with ${FAST_PATHS_ENV}=0 a connection runs on amqplib alone, and messages still go and come`, async () => {
  process.env[FAST_PATHS_ENV] = "0";
  let off: Reader;
  try {
    off = await reader(true);
  } finally {
    delete process.env[FAST_PATHS_ENV];
  }
  try {
    expect(fastPaths(off.conn)).toEqual({ directWrites: false, smallPublish: false, deliveryReader: false, amqplib: installed, reasons: [`${FAST_PATHS_ENV}=0`] });
    // Nothing installed: amqplib's own frame reading, channel allocation and channel writes.
    const c = internalsOf(off.conn);
    expect(Object.hasOwn(c, "freshChannel") || Object.hasOwn(c, "recvFrame")).toBe(false);
    expect(Object.hasOwn(bufferOf(off), "write")).toBe(false);

    let sentByAmqplib = 0;
    let readByAmqplib = 0;
    const send = c.sendMessage.bind(c);
    c.sendMessage = (...a) => (sentByAmqplib++, send(...a));
    const ch = off.ch as unknown as { acceptMessageFrame(f: unknown): void };
    const accept = ch.acceptMessageFrame.bind(ch);
    ch.acceptMessageFrame = (f) => (readByAmqplib++, accept(f));

    const before = fastPathUse();
    const sent = [{ messageId: "m", type: "small_value", correlationId: "7", replyTo: "r" }, { type: "only-type" }, {}];
    sent.forEach((props, i) => publishSmall(off.ch, "", off.queue, Buffer.from(`body ${i}`), props));
    const got = await take(off, sent.length);
    got.forEach((m, i) => {
      expect(m.content.toString()).toBe(`body ${i}`);
      expect(m.properties).toMatchObject({ ...sent[i], headers: {} }); // amqplib's publish adds the empty table
    });
    expect(sentByAmqplib).toBe(sent.length);
    expect(readByAmqplib).toBe(sent.length * 3); // deliver, header, body: each parsed by amqplib
    expect(fastPathUse()).toEqual(before);
  } finally {
    await off.conn.close();
  }
});

/** Runs test/fixtures/frames_driver.ts (a driver, its node and workers) with the off switch set to `value`, or unset. */
function framesDriver(value: string | undefined): Promise<{ worker: { nested: number; use: Record<string, number>; env: string | null }; driver: Record<string, number> }> {
  const driver = path.join(__dirname, "..", "fixtures", "frames_driver.ts");
  const { [FAST_PATHS_ENV]: _, ...env } = process.env;
  if (value !== undefined) env[FAST_PATHS_ENV] = value;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["-r", "tsx/cjs", driver], { env }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout.trim().split("\n").pop()!)));
  });
}

test(`a cluster started with ${FAST_PATHS_ENV}=0 runs tasks on amqplib alone, in the driver and in its workers`, async () => {
  const off = await framesDriver("0");
  const none = { directWrites: 0, smallPublishes: 0, deliveriesRead: 0 };
  expect(off.worker.nested).toBe(1); // a task that submitted a task and got its result
  expect(off.worker.env).toBe("0"); // inherited through the node
  expect(off.worker.use).toEqual(none);
  expect(off.driver).toEqual(none);

  // The same driver without the switch: every fast path ran in both processes.
  const on = await framesDriver(undefined);
  expect(on.worker.nested).toBe(1);
  for (const use of [on.worker.use, on.driver]) for (const counted of Object.keys(none)) expect(use[counted]).toBeGreaterThan(0);
});
