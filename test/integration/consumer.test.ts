// A node's shape consumer (node/consumer.ts) on the real broker: its window of unacked deliveries,
// and renewing it while tasks it delivered still run.
import type * as amqp from "amqplib";
import { ChannelOps, ShapeConsumer } from "../../src/node/consumer";
import { brokerQueue } from "../helpers";

const broker = brokerQueue("consumer");
const { queue } = broker;

test("a consumer whose window is held by a running task gets a whole window again when renewed", async () => {
  const { ch } = broker;
  const received: amqp.ConsumeMessage[] = [];
  const waiters: (() => void)[] = [];
  const consumer = new ShapeConsumer(new ChannelOps(ch), queue, [], (m) => {
    received.push(m);
    for (const w of waiters.splice(0)) w();
  });
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
