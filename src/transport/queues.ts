/** Queue operations on throwaway channels: a failed passive declare or delete closes its channel. */
import type * as amqp from "amqplib";
import { WarrenError } from "../errors";

/**
 * Empties a queue whose consumer died (a dead actor's mailbox), answering each message, then
 * deletes it. It first waits for the dead consumer to be gone, so the messages it held are back in
 * the queue. A message published between the last read and the delete fails the delete (ifEmpty),
 * so the loop reads again.
 */
export async function drainQueue(conn: amqp.ChannelModel, queue: string, answer: (m: amqp.GetMessage) => void): Promise<void> {
  const deadline = Date.now() + 30_000;
  while ((await consumerCount(conn, queue)) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  for (let round = 0; round < 100; round++) {
    const ch = await conn.createChannel();
    ch.on("error", () => undefined);
    try {
      for (let m = await ch.get(queue, { noAck: true }); m; m = await ch.get(queue, { noAck: true })) answer(m);
      await ch.deleteQueue(queue, { ifEmpty: true });
      await ch.close();
      return;
    } catch {
      // 404: already gone; 406: not empty after all (read again). Either closed the channel.
      if ((await consumerCount(conn, queue)) < 0) return;
    }
  }
  throw new WarrenError(`could not empty ${queue}: messages keep arriving`);
}

/** The queue's consumer count, or -1 if it does not exist (a passive declare on a throwaway channel). */
export async function consumerCount(conn: amqp.ChannelModel, queue: string): Promise<number> {
  const ch = await conn.createChannel();
  ch.on("error", () => undefined);
  try {
    const { consumerCount } = await ch.checkQueue(queue);
    await ch.close();
    return consumerCount;
  } catch {
    return -1;
  }
}

/** Messages ready in a queue (not those delivered and unacked), or 0 if it does not exist. */
export async function messageCount(conn: amqp.ChannelModel, queue: string): Promise<number> {
  const ch = await conn.createChannel();
  ch.on("error", () => undefined);
  try {
    const { messageCount } = await ch.checkQueue(queue);
    await ch.close();
    return messageCount;
  } catch {
    return 0;
  }
}
