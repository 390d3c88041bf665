// transport/frames.ts on the real broker: small publishes warren encodes, and deliveries warren
// reads, are what amqplib's own publish and reading make of the same messages, in order.
import * as amqp from "amqplib";
import { brokerAddress, connectBroker } from "../../src/transport";
import { publishSmall } from "../../src/transport/frames";

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

beforeAll(async () => {
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
