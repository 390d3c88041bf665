/** Queue operations on throwaway channels: a failed passive declare or delete closes its channel. */
import type * as amqp from "amqplib";
import { WarrenError } from "../errors";

/**
 * Empties a queue whose consumer died (a dead actor's mailbox), answering each message, then
 * deletes it. It first waits for the dead consumer to be gone, so the messages it held are back in
 * the queue. A message published between the last read and the delete fails the delete (ifEmpty),
 * so the loop reads again. A quorum queue takes no ifEmpty (RabbitMQ closes the connection, 540):
 * it is deleted once read empty, and a call that comes after is answered by the death broadcast.
 * At most DRAINS_AT_ONCE run at once on a connection: each holds channels of it (2,047 at most),
 * and a node may bury thousands of shared actors at once.
 */
export async function drainQueue(conn: amqp.ChannelModel, queue: string, answer: (m: amqp.GetMessage) => void, quorum = false): Promise<void> {
  let running = drains.get(conn);
  if (!running) drains.set(conn, (running = { count: 0, waiting: [] }));
  if (running.count >= DRAINS_AT_ONCE) await new Promise<void>((r) => running.waiting.push(r));
  else running.count++;
  try {
    await drain(conn, queue, answer, quorum);
  } finally {
    const next = running.waiting.shift();
    if (next) next(); // its turn, in this one's place
    else running.count--;
  }
}

const DRAINS_AT_ONCE = 16;
const drains = new WeakMap<amqp.ChannelModel, { count: number; waiting: (() => void)[] }>();

async function drain(conn: amqp.ChannelModel, queue: string, answer: (m: amqp.GetMessage) => void, quorum: boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (((await queueInfo(conn, queue))?.consumerCount ?? 0) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  for (let round = 0; round < 100; round++) {
    const ch = await conn.createChannel();
    ch.on("error", () => undefined);
    try {
      for (let m = await ch.get(queue, { noAck: true }); m; m = await ch.get(queue, { noAck: true })) answer(m);
      await ch.deleteQueue(queue, quorum ? {} : { ifEmpty: true });
      await ch.close();
      return;
    } catch {
      // 404: already gone; 406: not empty after all (read again). Either closed the channel.
      if (!(await queueInfo(conn, queue))) return;
    }
  }
  throw new WarrenError(`could not empty ${queue}: messages keep arriving`);
}

/** A queue's counts (ready messages, consumers), or undefined if it does not exist. */
export async function queueInfo(conn: amqp.ChannelModel, queue: string): Promise<{ messageCount: number; consumerCount: number } | undefined> {
  const ch = await conn.createChannel();
  ch.on("error", () => undefined);
  try {
    const { messageCount, consumerCount } = await ch.checkQueue(queue);
    await ch.close();
    return { messageCount, consumerCount };
  } catch {
    return undefined;
  }
}

/** Whether a queue is gone: a passive declare that fails with 404 (not 405, held by another connection). */
export async function queueAbsent(conn: amqp.ChannelModel, queue: string): Promise<boolean> {
  const ch = await conn.createChannel();
  let code = 0;
  ch.on("error", (err: { code?: number }) => { code = err.code ?? 0; });
  try {
    await ch.checkQueue(queue);
    await ch.close();
    return false;
  } catch {
    return code === 404;
  }
}
