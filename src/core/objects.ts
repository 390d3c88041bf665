/**
 * core: this process's objects (Ray's reference counter and object provider). It owns what the
 * process creates (puts, and the returns of tasks it submitted) in its OwnerTable, answers
 * borrowers who ask through its inbox, asks owners for the objects it borrows, and reads a
 * value from where it is: inline, this node's LMDB store, or another node's (transfer.ts).
 *
 * Invariants: a stored value is committed to LMDB before anyone hears of it; an object whose ref
 * escaped into a message is freed only with its owner; a ref dropped before any message carried
 * it is freed at once (FinalizationRegistry), in the store of whichever node holds it.
 */
import * as v8 from "node:v8";
import type * as amqp from "amqplib";
import { ObjectLostError } from "../errors";
import { byteLength, decode, decodeError, encode, encodeError, findInstances, hasMarkers, joined } from "../serialization";
import { ObjectRef } from "../objects/ref";
import { ObjectStore } from "../objects/store";
import { OwnerTable } from "../objects/owner";
import { Kind } from "../wire/kinds";
import { sendAgainSoon } from "../transport/link";
import { objectId } from "../wire/ids";
import type { StoredObject } from "../wire/messages";
import { ActorHandleCore } from "./actor-handle";
import { CORE_DEFAULTS } from "./defaults";
import { Transfer } from "./transfer";
import type { Runtime } from "./runtime";

/** Takes back a callback given to `locate`, for a get or wait that stops waiting. */
export type TakeBack = () => void;

interface Request {
  /** The inbox of the object's owner. */
  inbox: string;
  /** Who waits for the answer; a request whose waiters all gave up stays out, for whoever asks next. */
  waiters: Set<(value: StoredObject) => void>;
}

export class Objects {
  readonly owned = new OwnerTable();
  /** Objects asked of their owners and not yet answered, one request per object at a time. */
  private readonly requests = new Map<string, Request>();
  /** The requests out when the connection went. */
  private lostRequests: string[] = [];
  private readonly freer = new FinalizationRegistry<string>((id) => this.freePrivate(id));
  private store?: ObjectStore;
  readonly transfer: Transfer;

  constructor(private readonly rt: Runtime) {
    this.transfer = new Transfer(rt);
  }

  /** A ref handed to user code: freed when it is collected, if no message ever carried it. */
  track(ref: ObjectRef): ObjectRef {
    this.freer.register(ref, ref.hex());
    return ref;
  }

  private freePrivate(id: string): void {
    const value = this.owned.releaseIfPrivate(id);
    if (value && "node" in value && !this.rt.isClosed) this.freeStored(id, value.node);
  }

  /** Removes a stored object from the node that holds it. */
  private freeStored(id: string, nodeId: string): void {
    if (nodeId === this.rt.config.nodeId) this.localStore().remove(id);
    else this.rt.ch.publish(this.rt.topo.control, `node.${nodeId}`, v8.serialize({ id }), { type: Kind.freeObject });
  }

  /** A task's result for object `id`. The caller dropped the ref before it came: free a stored copy nobody will read. */
  settle(id: string, value: StoredObject): void {
    if (!this.owned.resolve(id, value) && "node" in value) this.freeStored(id, value.node);
  }

  /** Stores a value put by this process, under the id of the put (`taskId`, return index 0). */
  put(value: unknown, taskId: string): ObjectRef {
    const id = objectId(taskId, 0);
    const bytes = encode(value, "the value passed to put()");
    if (hasMarkers(bytes)) this.escape(value);
    this.owned.ready(id, this.storeValue(id, bytes));
    return this.track(new ObjectRef(id));
  }

  /** Inline if small, else into this node's LMDB (committed before anyone hears of it). */
  storeValue(id: string, parts: Buffer[]): StoredObject {
    const size = byteLength(parts);
    if (size <= CORE_DEFAULTS.inlineMax) return { inline: joined(parts) };
    this.localStore().putSync(id, parts);
    return { node: this.rt.config.nodeId, size };
  }

  localStore(): ObjectStore {
    return (this.store ??= ObjectStore.open(this.rt.config.storePath));
  }

  /**
   * Marks refs inside a value as escaped (another process may hold them now) and returns the
   * mailboxes of actor handles in it that this process is still declaring.
   */
  escape(value: unknown): Promise<void>[] {
    for (const r of findInstances(value, ObjectRef)) this.owned.markEscaped(r.hex());
    const waits: Promise<void>[] = [];
    for (const h of findInstances(value, ActorHandleCore)) {
      const p = this.rt.mailboxes.get(h.actorId);
      if (p) waits.push(p);
    }
    return waits;
  }

  // ---- borrowing -------------------------------------------------------------------------

  /** A borrower asks where an object this process owns is: answered once it is ready. */
  onRequest(req: { id: string; replyTo: string }): void {
    const reply = (value: StoredObject) =>
      this.rt.ch.publish("", req.replyTo, v8.serialize({ id: req.id, value }), { type: Kind.objectReply });
    if (!this.owned.onReady(req.id, reply)) {
      reply({ error: encodeError(new ObjectLostError(`object ${req.id} is unknown to its owner (freed, or the owner restarted)`)) });
    }
  }

  /** An owner's answer to a request of ours. */
  onReply(r: { id: string; value: StoredObject }): void {
    const req = this.requests.get(r.id);
    if (!req) return;
    this.requests.delete(r.id);
    for (const w of req.waiters) w(r.value);
  }

  /** The broker could not deliver a request of ours: the object's owner has exited. */
  onRequestReturned(msg: amqp.Message): void {
    const { id } = v8.deserialize(msg.content);
    if (this.rt.link.settling()) {
      // Back from an outage a moment ago: the owner may not have declared its inbox again yet.
      sendAgainSoon(() => this.requests.has(id) && this.ask(id));
      return;
    }
    const err = new ObjectLostError(`the owner of ObjectRef(${id}) has exited, so the object is lost`);
    this.onReply({ id, value: { error: encodeError(err) } });
  }

  /**
   * Where an object's value is: returned if known now, else given to `then` once known, from
   * this process's table or from the object's owner (asked through its inbox). In the second
   * case it returns what takes `then` back.
   */
  locate(ref: ObjectRef, then: (where: StoredObject) => void): StoredObject | TakeBack {
    const id = ref.hex();
    const local = this.owned.peek(id);
    if (local) return local;
    const off = this.owned.onReady(id, then);
    if (off) return off;
    let req = this.requests.get(id);
    if (!req) {
      req = { inbox: this.rt.topo.inbox(ref.ownerId), waiters: new Set() };
      this.requests.set(id, req);
      this.ask(id);
    }
    const waiters = req.waiters;
    waiters.add(then);
    return () => waiters.delete(then);
  }

  private ask(id: string): void {
    this.rt.ch.publish("", this.requests.get(id)!.inbox, v8.serialize({ id, replyTo: this.rt.inbox }), { type: Kind.objectRequest, mandatory: true });
  }

  /** The connection went: the requests out now may be lost (those asked from now on wait in its outbox). */
  connectionLost(): void {
    this.lostRequests = [...this.requests.keys()];
  }

  /** The connection is back: asks again what was out when it went. */
  resendLost(): void {
    for (const id of this.lostRequests) if (this.requests.has(id)) this.ask(id);
    this.lostRequests = [];
  }

  /** `locate` as a promise. */
  located(ref: ObjectRef): Promise<StoredObject> {
    return new Promise((resolve) => {
      const now = this.locate(ref, resolve);
      if (typeof now !== "function") resolve(now);
    });
  }

  /** The value of a stored object: inline, in this node's store, or fetched from the node holding it. */
  async materialize(value: StoredObject, id: string): Promise<unknown> {
    if ("inline" in value) return decode(value.inline);
    if ("error" in value) throw decodeError(value.error);
    const { nodeId, storePath } = this.rt.config;
    const local = storePath ? this.localStore().view(id) : undefined;
    if (local) return decode(local);
    if (value.node === nodeId) throw new ObjectLostError(`ObjectRef(${id}) is no longer in the object store of node ${value.node}`);
    return decode(await this.transfer.fetch(value.node, id, value.size, storePath ? this.localStore() : undefined), true);
  }

  /** This process's rows of the state API's objects. */
  rows(): Record<string, unknown>[] {
    const { ownerId, jobId } = this.rt.config;
    return this.owned.rows().map((o) => ({ ...o, owner_pid: process.pid, owner_id: ownerId, job_id: jobId }));
  }

  /** Frees what this process put in its node's store, and closes it. */
  async close(): Promise<void> {
    if (!this.store) return;
    await this.transfer.settled();
    this.store.removePrefix(this.rt.config.ownerId);
    await this.store.close();
  }
}
