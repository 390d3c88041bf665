// The raw limit's server: one process consuming one queue and answering each message straight to
// its `replyTo` (RabbitMQ direct reply-to), with Nagle off. Nothing else: no serialization, no
// state. Started by bench/limits.ts with the queue's name as its argument; says "ready" over IPC
// once consuming, and exits when its parent goes (IPC disconnect) or on SIGTERM. With
// WARREN_BENCH_ECHO_QUORUM=1 (bench --durable) the queue is a quorum queue, removed on exit.
"use strict";
const amqp = require("amqplib");

const address = process.env.WARREN_BENCH_ECHO_ADDRESS;
const [queue] = process.argv.slice(2);
const quorum = process.env.WARREN_BENCH_ECHO_QUORUM === "1";

async function main() {
  const conn = await amqp.connect(address, { noDelay: true, clientProperties: { connection_name: "warren bench echo" } });
  conn.on("error", () => undefined);
  const ch = await conn.createChannel();
  ch.on("error", (err) => {
    console.error(`echo: channel error: ${err.message}`);
    process.exit(1);
  });
  if (quorum) await ch.assertQueue(queue, { durable: true, arguments: { "x-queue-type": "quorum" } });
  else await ch.assertQueue(queue, { exclusive: true, autoDelete: true, durable: false });
  await ch.consume(
    queue,
    (msg) => {
      if (!msg) return;
      ch.publish("", msg.properties.replyTo, msg.content, { correlationId: msg.properties.correlationId });
    },
    { noAck: true },
  );
  const stop = async () => {
    if (quorum) await ch.deleteQueue(queue).catch(() => undefined);
    await ch.close().catch(() => undefined);
    await conn.close().catch(() => undefined);
    process.exit(0);
  };
  process.on("disconnect", stop);
  process.on("SIGTERM", stop);
  process.send?.({ t: "ready" });
}

main().catch((err) => {
  console.error(`echo: ${err.message}`);
  process.exit(1);
});
