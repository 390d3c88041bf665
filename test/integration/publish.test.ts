// Small publishes encoded by warren (transport/publish.ts), on the real broker: what arrives is what
// amqplib's own publish would have sent, in the order it was sent.
import type * as amqp from "amqplib";
import { brokerAddress, connectBroker } from "../../src/transport";
import { publishSmall } from "../../src/transport/publish";

let conn: amqp.ChannelModel;
let ch: amqp.Channel;
let queue: string;
const arrived: amqp.ConsumeMessage[] = [];
const waiters: (() => void)[] = [];

beforeAll(async () => {
  conn = await connectBroker(brokerAddress(), "warren publish test");
  ch = await conn.createChannel();
  queue = (await ch.assertQueue("", { exclusive: true })).queue;
  await ch.consume(queue, (m) => {
    if (!m) return;
    arrived.push(m);
    for (const w of waiters.splice(0)) w();
  }, { noAck: true });
});
afterAll(() => conn.close());

async function take(n: number): Promise<amqp.ConsumeMessage[]> {
  while (arrived.length < n) await new Promise<void>((r) => waiters.push(r));
  return arrived.splice(0, n);
}

const fields = (m: amqp.ConsumeMessage) => ({
  content: m.content.toString("latin1"),
  messageId: m.properties.messageId,
  type: m.properties.type,
  correlationId: m.properties.correlationId,
  replyTo: m.properties.replyTo,
  exchange: m.fields.exchange,
  routingKey: m.fields.routingKey,
});

test("a message with each property arrives as amqplib would have sent it", async () => {
  const props = { messageId: "0123abcd", type: "small_value", correlationId: "42", replyTo: "somewhere", mandatory: true };
  const body = Buffer.from([0, 1, 2, 255, 0xce]);
  for (const p of [props, { type: "only-type" }, {}, { messageId: "é ü" }]) {
    publishSmall(ch, "", queue, body, p);
    const { mandatory: _, ...sent } = p as typeof props;
    ch.publish("", queue, body, sent);
    const [mine, theirs] = await take(2);
    expect(fields(mine)).toEqual(fields(theirs));
    expect(fields(mine)).toMatchObject({ content: body.toString("latin1"), ...sent });
  }
});

test("a burst keeps its order, mixed with amqplib's own publishes", async () => {
  for (let i = 0; i < 500; i++) {
    const body = Buffer.from(String(i));
    if (i % 7 === 0) ch.publish("", queue, body);
    else publishSmall(ch, "", queue, body, { type: "n" });
  }
  expect((await take(500)).map((m) => Number(m.content.toString()))).toEqual(Array.from({ length: 500 }, (_, i) => i));
});

test("what it cannot encode goes through amqplib: a body larger than a frame, an empty one", async () => {
  const big = Buffer.alloc(300 * 1024, 7);
  publishSmall(ch, "", queue, big, { type: "big" });
  publishSmall(ch, "", queue, Buffer.alloc(0), { type: "empty" });
  const [a, b] = await take(2);
  expect(a.content.equals(big)).toBe(true);
  expect(b.content.length).toBe(0);
  expect(b.properties.type).toBe("empty");
});

test("a mandatory message nobody takes comes back; a closed channel raises amqplib's error", async () => {
  const returned = new Promise<amqp.Message>((resolve) => ch.once("return", resolve));
  publishSmall(ch, "", `warren.test.nobody.${Date.now()}`, Buffer.from("x"), { messageId: "lost", mandatory: true });
  expect((await returned).properties.messageId).toBe("lost");

  const closed = await conn.createChannel();
  await closed.close();
  expect(() => publishSmall(closed, "", queue, Buffer.from("x"))).toThrow(/closed/i);
});
