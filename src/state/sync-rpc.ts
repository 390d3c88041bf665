/**
 * Runs in a worker thread (synckit) for Runtime.rpcSync: one request to the head and its answer,
 * while the calling thread blocks. Keeps one connection for the thread's life; replies come on
 * RabbitMQ's direct reply-to, so no queue is declared.
 */
import * as v8 from "node:v8";
import { runAsWorker } from "synckit";
import type * as amqp from "amqplib";
import { CLOSE_SYNC_RPC, RpcReply, connectBroker } from "../transport";
import { encodeError } from "../serialization";
import { NodeDiedError } from "../errors";

const REPLY_TO = "amq.rabbitmq.reply-to";
let channel: Promise<amqp.Channel> | undefined;
let conn: amqp.ChannelModel | undefined;
const waiting = new Map<string, (r: RpcReply) => void>();
let seq = 0;

function open(address: string): Promise<amqp.Channel> {
  return (channel ??= (async () => {
    conn = await connectBroker(address, "warren sync-rpc");
    const ch = await conn.createChannel();
    // An unroutable request means the head's queue is gone: answer instead of hanging.
    ch.on("return", (m: amqp.Message) => {
      const error = encodeError(new NodeDiedError("the cluster's head is unreachable: it has stopped or died"));
      waiting.get(m.properties.correlationId)?.({ ok: false, error });
      waiting.delete(m.properties.correlationId);
    });
    await ch.consume(REPLY_TO, (m) => {
      if (!m) return;
      waiting.get(m.properties.correlationId)?.(v8.deserialize(m.content));
      waiting.delete(m.properties.correlationId);
    }, { noAck: true });
    return ch;
  })());
}

runAsWorker(async (address: string, head: string, kind: string, payload: unknown): Promise<RpcReply | undefined> => {
  if (kind === CLOSE_SYNC_RPC) {
    await conn?.close().catch(() => undefined);
    channel = conn = undefined;
    return undefined;
  }
  const ch = await open(address);
  const correlationId = String(++seq);
  return new Promise<RpcReply>((resolve) => {
    waiting.set(correlationId, resolve);
    ch.publish("", head, v8.serialize(payload), { type: kind, replyTo: REPLY_TO, correlationId, mandatory: true });
  });
});

