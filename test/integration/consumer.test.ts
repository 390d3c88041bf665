// A node's shape consumer (node/consumer.ts) on the real broker: its window of unacked deliveries,
// renewing it while tasks it delivered still run, and consuming again when the broker cancels it.
import { randomUUID } from "node:crypto";
import type * as amqp from "amqplib";
import { ChannelOps, ShapeConsumer } from "../../src/node/consumer";
import { waitForCondition } from "warren/testing";
import { brokerQueue } from "../helpers";

const noRecovery = { declare: async () => undefined, lost: (reason: Error) => { throw reason; } };

const broker = brokerQueue("consumer");
const { queue } = broker;

test("a consumer whose window is held by a running task gets a whole window again when renewed", async () => {
  const { ch } = broker;
  const received: amqp.ConsumeMessage[] = [];
  const waiters: (() => void)[] = [];
  const consumer = new ShapeConsumer(new ChannelOps(ch), queue, [], (m) => {
    received.push(m);
    for (const w of waiters.splice(0)) w();
  }, noRecovery);
  const count = async (n: number) => {
    while (received.length < n) await new Promise<void>((r) => waiters.push(r));
  };
  const unacked = (tag: string) => received.filter((m) => m.fields.consumerTag === tag).length;

  await consumer.consume(1);
  ch.sendToQueue(queue, Buffer.from("long"));
  ch.sendToQueue(queue, Buffer.from("short"));
  await count(1);
  // The first delivery runs on (unacked): no room is left, so the second stays in the queue.
  expect(consumer.room(unacked)).toBe(0);
  expect((await ch.checkQueue(queue)).messageCount).toBe(1);

  // Paused and then wanted again before the pause took effect (a slot freed meanwhile): renewed.
  void consumer.pause();
  await consumer.consume(1);
  await count(2);
  expect(received.map((m) => m.content.toString())).toEqual(["long", "short"]);
  expect(consumer.room(unacked)).toBe(0);
  for (const m of received) ch.ack(m);
  await consumer.pause();
});

test("a consumer whose queue is deleted under it declares the queue again and consumes it, not left deaf", async () => {
  const { conn, ch } = broker;
  const shared = `warren.test.consumer-cancel.${randomUUID()}`;
  await ch.assertQueue(shared, { durable: true });
  const received: string[] = [];
  let declared = 0;
  const consumer = new ShapeConsumer(new ChannelOps(ch), shared, [], (m) => {
    received.push(m.content.toString());
    ch.ack(m);
  }, { declare: async () => { declared++; await ch.assertQueue(shared, { durable: true }); }, lost: (reason) => { throw reason; } });
  await consumer.consume(4);
  const other = await conn.createChannel();
  try {
    await other.deleteQueue(shared);
    await waitForCondition(async () => declared === 1 && (await other.checkQueue(shared)).consumerCount === 1, 10);
    other.sendToQueue(shared, Buffer.from("after"));
    await waitForCondition(() => received.includes("after"), 10);
    expect(received).toEqual(["after"]);
  } finally {
    await consumer.pause();
    await other.deleteQueue(shared);
    await other.close();
  }
});
