/**
 * node: the object manager's server (Ray's object manager port). It streams objects of this
 * node's store to processes on other nodes over plain TCP (core/transfer.ts is the other end),
 * and answers the broker's chunk requests, the fallback path. It remembers which nodes took a
 * copy of each object, so that freeing the object here frees those copies too. The stream's
 * format is in wire/object-stream.ts.
 */
import * as fs from "node:fs";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import { BoundedMap } from "../bounded";
import { WarrenError } from "../errors";
import type { ObjectStore } from "../objects/store";
import { encodeError } from "../serialization";
import type { RpcReply } from "../wire/kinds";
import type { NodeRequests, PayloadOf, ReplyOf } from "../wire/head";
import { type StreamRequest, streamHead } from "../wire/object-stream";

/** Bytes read from a stored file per socket write; two are in use at once (one read, one sending). */
const CHUNK = 4 * 1024 * 1024;
/** Objects whose copies on other nodes are remembered, newest kept. */
const COPIES_KEPT = 100_000;
const read = promisify(fs.read);

export class ObjectServer {
  /** Bytes sent so far, by path: the node's metrics. */
  readonly sent = { direct: 0, broker: 0 };
  /** Object id -> the nodes that took a copy of it. */
  private readonly copies = new BoundedMap<string, Set<string>>(COPIES_KEPT);
  private readonly sockets = new Set<net.Socket>();

  private constructor(private readonly server: net.Server, private readonly store: ObjectStore, private readonly nodeId: string) {}

  /** Listens on `host`, on `port` (0: one the system picks). */
  static async listen(store: ObjectStore, nodeId: string, host: string, port: number): Promise<ObjectServer> {
    const server = net.createServer({ noDelay: true });
    const s = new ObjectServer(server, store, nodeId);
    server.on("connection", (sock) => s.serve(sock));
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err) => reject(new WarrenError(`node ${nodeId} could not serve objects on ${host}:${port} (${err.message}); choose another port or leave it to the system (0)`, { cause: err })));
      server.listen(port, host, () => resolve());
    });
    server.unref();
    return s;
  }

  get endpoint(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  private serve(sock: net.Socket): void {
    this.sockets.add(sock);
    sock.on("close", () => this.sockets.delete(sock));
    sock.on("error", () => sock.destroy());
    let line = "";
    const onData = (d: Buffer) => {
      line += d.toString("utf8");
      const end = line.indexOf("\n");
      if (end < 0) return;
      sock.off("data", onData);
      void this.send(sock, line.slice(0, end)).catch(() => sock.destroy());
    };
    sock.on("data", onData);
  }

  private async send(sock: net.Socket, request: string): Promise<void> {
    const { id, from } = JSON.parse(request) as StreamRequest;
    const src = this.store.source(id);
    if (!src) {
      const why = Buffer.from(`object ${id} is not in the store of node ${this.nodeId}`);
      return void sock.end(Buffer.concat([streamHead(false, why.length), why]));
    }
    this.tookCopy(id, from); // before it is sent: a free that comes meanwhile must reach the copy too
    if ("bytes" in src) {
      sock.write(streamHead(true, src.bytes.length));
      await written(sock, src.bytes);
    } else {
      try {
        sock.write(streamHead(true, src.size));
        await streamFile(sock, src.fd, src.size);
      } finally {
        fs.closeSync(src.fd);
      }
    }
    this.sent.direct += "bytes" in src ? src.bytes.length : src.size;
    sock.end();
  }

  /** A chunk of a stored object for the broker path (serialize copies it out of the map). */
  chunk(p: PayloadOf<NodeRequests, "object.fetch">): RpcReply<ReplyOf<NodeRequests, "object.fetch">> {
    const chunk = this.store.chunk(p.id, p.offset, p.length);
    if (!chunk) return { ok: false, error: encodeError(new WarrenError(`object ${p.id} is not in the store of node ${this.nodeId}`)) };
    this.sent.broker += chunk.length;
    if (p.offset === 0) this.tookCopy(p.id, p.from);
    return { ok: true, value: { chunk } };
  }

  private tookCopy(id: string, node: string): void {
    if (!node || node === this.nodeId) return; // a driver with no node of its own keeps no copy
    const nodes = this.copies.get(id) ?? new Set();
    this.copies.set(id, nodes.add(node));
  }

  /** The object was freed here: the nodes that hold a copy of it. */
  freed(id: string): Iterable<string> {
    const nodes = this.copies.get(id) ?? [];
    this.copies.delete(id);
    return nodes;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function written(sock: net.Socket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => sock.write(data, (err) => (err ? reject(err) : resolve())));
}

/** A file to the socket: two buffers, one being read while the other is sent. */
async function streamFile(sock: net.Socket, fd: number, size: number): Promise<void> {
  const bufs = [Buffer.allocUnsafe(Math.min(CHUNK, size)), Buffer.allocUnsafe(Math.min(CHUNK, size))];
  const sending: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
  for (let at = 0, i = 0; at < size; i ^= 1) {
    await sending[i];
    const { bytesRead } = await read(fd, bufs[i], 0, Math.min(CHUNK, size - at), at);
    if (bytesRead === 0) throw new WarrenError(`a stored file ended at ${at} of its ${size} bytes`);
    sending[i] = written(sock, bufs[i].subarray(0, bytesRead));
    at += bytesRead;
  }
  await Promise.all(sending);
}
