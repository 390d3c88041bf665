/**
 * core: copies an object from the node that holds it (Ray's object manager pull). The bytes come
 * straight from the holder's object port (node/object-server.ts, wire/object-stream.ts) over TCP, read by the kernel
 * into the buffer that becomes the value, and go on to this node's store as they arrive, so its
 * other processes read it in place; the broker carries only the question of where the port is,
 * asked once per node. Should the direct path fail (the port refused, the stream cut), the object
 * comes in chunks over the broker, as before.
 */
import * as net from "node:net";
import { BoundedMap } from "../bounded";
import { ObjectLostError, WarrenError } from "../errors";
import type { ObjectStore, StoreWriter } from "../objects/store";
import { HEAD_BYTES, type StreamRequest, readStreamHead } from "../wire/object-stream";
import { CORE_DEFAULTS } from "./defaults";
import type { Runtime } from "./runtime";

type Endpoint = { host: string; port: number };

/** Nodes whose object port is remembered. */
const ENDPOINTS_KEPT = 1024;
/** What arrives is handed to the store in writes of at least this much. */
const WRITE_MIN = 4 * 1024 * 1024;

export class Transfer {
  /** Node id -> its object port, asked of the node once. */
  readonly endpoints = new BoundedMap<string, Promise<Endpoint>>(ENDPOINTS_KEPT);
  /** Copies still being written to this node's store. */
  private readonly committing = new Set<Promise<void>>();
  /** Nodes the direct path failed for, said once on stderr. */
  private readonly warned = new Set<string>();

  constructor(private readonly rt: Runtime) {}

  /**
   * The bytes of object `id` (`size` bytes) from node `nodeId`. A copy goes to `store`, if given,
   * committed after this returns: the process that asked need not wait for the node's copy.
   */
  async fetch(nodeId: string, id: string, size: number, store?: ObjectStore): Promise<Buffer> {
    const sink = store?.writer(id, size);
    try {
      const bytes = await pull(await this.endpoint(nodeId), id, store ? this.rt.config.nodeId : "", size, sink);
      if (sink) {
        // A copy that fails (the object freed meanwhile) only means the node's other processes fetch it too.
        const done: Promise<void> = sink.commit(bytes).catch(() => undefined).finally(() => this.committing.delete(done));
        this.committing.add(done);
      }
      return bytes;
    } catch (err) {
      sink?.abort();
      this.endpoints.delete(nodeId); // asked again next time: the node may have moved its port
      if (!this.warned.has(nodeId)) {
        this.warned.add(nodeId);
        console.error(`warren: the direct transfer of ObjectRef(${id}) from node ${nodeId} failed (${(err as Error).message}); fetching it through the broker`);
      }
      const bytes = await this.viaBroker(nodeId, id, size, store ? this.rt.config.nodeId : "");
      store?.putSync(id, [bytes]);
      return bytes;
    }
  }

  /** Once every copy under way is in the store (before it closes). */
  async settled(): Promise<void> {
    await Promise.all(this.committing);
  }

  private endpoint(nodeId: string): Promise<Endpoint> {
    let e = this.endpoints.get(nodeId);
    if (!e) this.endpoints.set(nodeId, (e = this.rt.rpc.node(nodeId, "object.endpoint", {})));
    return e;
  }

  /** The fallback: chunks well under the broker's message size limit, a few requests in flight at once. */
  private async viaBroker(nodeId: string, id: string, size: number, from: string): Promise<Buffer> {
    const { fetchChunk, fetchWindow } = CORE_DEFAULTS;
    const buf = Buffer.allocUnsafe(size);
    let next = 0;
    const worker = async () => {
      while (next < size) {
        const offset = next;
        next += fetchChunk;
        const { chunk } = await this.rt.rpc.node(nodeId, "object.fetch", { id, offset, length: Math.min(fetchChunk, size - offset), from })
          .catch((err) => { throw new ObjectLostError(`ObjectRef(${id}) could not be fetched from node ${nodeId}: ${err.message}`, { cause: err }); });
        buf.set(chunk, offset);
      }
    };
    await Promise.all(Array.from({ length: fetchWindow }, worker));
    return buf;
  }
}

/**
 * Streams object `id` from a node's object port into a new buffer of `size` bytes (the kernel
 * reads into it in place), handing what arrives to `sink` as it comes.
 */
function pull({ host, port }: Endpoint, id: string, from: string, size: number, sink?: StoreWriter): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const head = Buffer.allocUnsafe(HEAD_BYTES);
    const spare = Buffer.allocUnsafe(1); // where the end of the stream is read, once the body is in
    let headGot = 0;
    let body: Buffer | undefined;
    let failed = false;
    let got = 0;
    let written = 0;
    const fail = (err: Error) => {
      sock.destroy();
      reject(err);
    };
    const where = `node port ${host}:${port}`;
    const sock = net.connect({
      host, port, noDelay: true,
      onread: {
        buffer: () => (headGot < HEAD_BYTES ? head.subarray(headGot) : got < body!.length ? body!.subarray(got) : spare),
        callback: (n) => {
          if (headGot < HEAD_BYTES) {
            headGot += n;
            if (headGot < HEAD_BYTES) return true;
            const { ok, length } = readStreamHead(head);
            failed = !ok;
            if (ok && length !== size) fail(new WarrenError(`${where} offered ${length} bytes of ObjectRef(${id}), not its ${size}`));
            body = Buffer.allocUnsafe(length);
            return true;
          }
          got += n;
          if (sink && !failed && (got - written >= WRITE_MIN || got === body!.length)) {
            sink.write(body!.subarray(written, got), written).catch(fail);
            written = got;
          }
          return true;
        },
      },
    });
    sock.setTimeout(CORE_DEFAULTS.transferIdleMs, () => fail(new WarrenError(`${where} sent nothing for ${CORE_DEFAULTS.transferIdleMs / 1000} s`)));
    const request: StreamRequest = { id, from };
    sock.on("connect", () => sock.write(`${JSON.stringify(request)}\n`));
    sock.on("error", fail);
    sock.on("end", () => {
      sock.destroy();
      if (!body || got < body.length) reject(new WarrenError(`${where} closed the stream of ObjectRef(${id}) after ${got} of ${size} bytes`));
      else if (failed) reject(new WarrenError(body.toString("utf8")));
      else resolve(body);
    });
  });
}
