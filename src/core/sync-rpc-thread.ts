/**
 * Runs in a worker thread (synckit) for core/rpc.ts (SyncRpc): one request to the head and its answer,
 * while the calling thread blocks. Keeps one connection for the thread's life; replies come on
 * RabbitMQ's direct reply-to, so no queue is declared.
 */
import { runAsWorker } from "synckit";
import type * as amqp from "amqplib";
import { Topology, connectBroker } from "../transport";
import { CLOSE_SYNC_RPC, RpcClient } from "../transport/rpc";
import { encodeError } from "../serialization";
import type { RpcReply } from "../wire/kinds";
import type { HeadRequest } from "../wire/head";

const REPLY_TO = "amq.rabbitmq.reply-to";
let client: Promise<RpcClient> | undefined;
let conn: amqp.ChannelModel | undefined;

function open(address: string, cluster: string, name: string): Promise<RpcClient> {
  return (client ??= (async () => {
    conn = await connectBroker(address, name);
    // A broker restart ends this connection: the next request connects again.
    conn.on("close", () => (client = conn = undefined));
    const ch = await conn.createChannel();
    const rpc = new RpcClient(() => ch, new Topology(cluster), REPLY_TO);
    ch.on("return", (m: amqp.Message) => rpc.returned(m));
    await ch.consume(REPLY_TO, (m) => m && rpc.settle(m), { noAck: true });
    return rpc;
  })());
}

runAsWorker(async (address: string, cluster: string, name: string, kind: HeadRequest | typeof CLOSE_SYNC_RPC, payload: never): Promise<RpcReply | undefined> => {
  if (kind === CLOSE_SYNC_RPC) {
    await conn?.close().catch(() => undefined);
    client = conn = undefined;
    return undefined;
  }
  const rpc = await open(address, cluster, name);
  try {
    return { ok: true, value: await rpc.head(kind, payload) };
  } catch (err) {
    return { ok: false, error: encodeError(err) };
  }
});
