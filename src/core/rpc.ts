/**
 * core: the synchronous request to the head, for the few calls the API makes synchronous
 * (creating a named actor must throw at once if the name is taken). A worker thread
 * (sync-rpc-thread.ts) does the round trip through the same RpcClient as every other request,
 * while this thread blocks on it (synckit); it connects on first use.
 */
import * as path from "node:path";
import { createSyncFn } from "synckit";
import { decodeError } from "../serialization";
import { TRANSPORT_DEFAULTS } from "../transport";
import { CLOSE_SYNC_RPC, requestTimeoutMs } from "../transport/rpc";
import type { RpcReply } from "../wire/kinds";
import type { HeadRequest, HeadRequests, PayloadOf, ReplyOf } from "../wire/head";
import { compiled } from "./paths";

type ThreadCall = (address: string, cluster: string, name: string, kind: string, payload: unknown) => RpcReply;

export class SyncRpc {
  private call?: ThreadCall;

  /** `name` names the thread's connection when it opens; `ensureOpen` throws if the runtime is closed or its cluster lost. */
  constructor(private readonly address: string, private readonly cluster: string, private readonly name: () => string, private readonly ensureOpen: () => void) {}

  head<K extends HeadRequest>(kind: K, payload: PayloadOf<HeadRequests, K>): ReplyOf<HeadRequests, K> {
    this.ensureOpen();
    // Past the thread's own limits (connecting, then the request), so that its error, naming the head, comes first.
    const timeout = TRANSPORT_DEFAULTS.connectTimeoutMs + requestTimeoutMs() + 5000;
    this.call ??= createSyncFn(compiled(path.join(__dirname, "sync-rpc-thread.js")), { timeout });
    const r = this.call(this.address, this.cluster, this.name(), kind, payload);
    if (!r.ok) throw decodeError(r.error);
    return r.value as ReplyOf<HeadRequests, K>;
  }

  /** Closes the thread's connection, if it was ever opened. */
  close(): void {
    this.call?.(this.address, this.cluster, this.name(), CLOSE_SYNC_RPC, null);
  }
}
