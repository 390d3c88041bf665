/**
 * core: this process's objects (Ray's reference counter and object provider). It owns what the
 * process creates (puts, and the returns of tasks it submitted) in its OwnerTable, answers
 * borrowers who ask through its inbox, asks owners for the objects it borrows, and reads a
 * value from where it is: inline, this node's LMDB store, or another node's (transfer.ts).
 *
 * Invariants: a stored value is committed to LMDB before anyone hears of it. An owned object is
 * freed, in the store of whichever node holds it, once nothing can reach it (objects/owner.ts):
 * its ObjectRefs here collected (FinalizationRegistry), every task given it in its arguments
 * ended (and its lineage dropped), and every borrower released it. A borrower is a process that
 * ran such a task and reported, in its result, still holding refs it received nested in the
 * arguments (objects/borrowed.ts); it releases them once they are collected there, and never
 * releases one it passed on into a message of its own. A ref put inside a value (a put, a return
 * value) is escaped: freed only with its owner.
 */
import * as v8 from "node:v8";
import type * as amqp from "amqplib";
import { ObjectLostError } from "../errors";
import { byteLength, decode, decodeError, encode, encodeError, findInstances, hasMarkers, joined } from "../serialization";
import { ObjectRef, onRevived } from "../objects/ref";
import { ObjectStore } from "../objects/store";
import { OwnerTable } from "../objects/owner";
import { BorrowTable } from "../objects/borrowed";
import { Kind } from "../wire/kinds";
import { sendAgainSoon } from "../transport/link";
import { objectId, ownerOf } from "../wire/ids";
import type { Held, ResultMessage, StoredObject } from "../wire/messages";
import { ActorHandleCore } from "./actor-handle";
import { currentRuntime, hasRuntime } from "./current";
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
  /** Refs of other processes' objects lent to this one in a call's arguments. */
  readonly borrowed = new BorrowTable();
  /** Objects asked of their owners and not yet answered, one request per object at a time. */
  private readonly requests = new Map<string, Request>();
  /** The requests out when the connection went. */
  private lostRequests: string[] = [];
  private readonly freer = new FinalizationRegistry<string>((id) => this.freed(id, this.owned.dropLocal(id)));
  private readonly loanFreer = new FinalizationRegistry<string>((id) => this.loanDropped(id));
  private releaseSoon?: NodeJS.Immediate;
  private gcSoon?: NodeJS.Timeout;
  private gcDelay = 0;
  private store?: ObjectStore;
  readonly transfer: Transfer;

  constructor(private readonly rt: Runtime) {
    this.transfer = new Transfer(rt);
  }

  /** A ref of an object this process owns, handed to user code: counted until it is collected. */
  track(ref: ObjectRef): ObjectRef {
    if (this.owned.addLocal(ref.hex())) this.freer.register(ref, ref.hex());
    return ref;
  }

  /** The last reason to keep an owned object went (`value` false: it is kept still): free it. */
  private freed(id: string, value: StoredObject | undefined | false): void {
    if (value === false || this.rt.isClosed) return;
    if (value && "node" in value) this.freeStored(id, value.node);
    this.rt.tasks.returnFreed(id);
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
   * Refs inside a value that goes into a message. With `pins` (a task's arguments), the objects
   * this process owns are pinned until the task ends and their ids added to `pins`; otherwise
   * (a put, a return value) they are escaped. Borrowed ones are passed on. Returns the mailboxes
   * of actor handles in it that this process is still declaring.
   */
  escape(value: unknown, pins?: string[]): Promise<void>[] {
    for (const r of findInstances(value, ObjectRef)) {
      const id = r.hex();
      if (!this.owned.has(id)) this.borrowed.passOn(id);
      else if (!pins) this.owned.markEscaped(id);
      else if (this.owned.pin(id)) pins.push(id);
    }
    const waits: Promise<void>[] = [];
    for (const h of findInstances(value, ActorHandleCore)) {
      const p = this.rt.mailboxes.get(h.actorId);
      if (p) waits.push(p);
    }
    return waits;
  }

  /** A task's arguments' pins, taken back as it ends (its lineage dropped). */
  unpin(ids: string[]): void {
    for (const id of ids) this.freed(id, this.owned.unpin(id));
  }

  /** A task that may still run elsewhere is given up on (cancelled): whoever runs it may keep its arguments' refs. */
  keepForGood(ids: string[]): void {
    for (const id of ids) this.owned.markEscaped(id);
  }

  /** A task's result says its worker still holds these refs it was given. */
  lent(held: Held): void {
    for (const id of held.ids) this.owned.addBorrower(id, held.by);
  }

  /** A borrower released refs it had reported holding. */
  onRelease(held: Held): void {
    for (const id of held.ids) this.freed(id, this.owned.release(id, held.by));
  }

  /**
   * A call's arguments, revived for user code: the refs nested in them that their owner, the
   * caller, lent this process, counted until collected. Top-level ref arguments are not: user
   * code gets their values, never the refs. Returns the ids, for `reportHeld`.
   */
  borrowArgs(args: unknown[], taskId: string, refArgs: number[]): string[] | undefined {
    const lender = ownerOf(taskId);
    if (lender === this.rt.config.ownerId) return undefined; // its own refs are counted by `track`
    let ids: string[] | undefined;
    for (let i = 0; i < args.length; i++) {
      if (refArgs.includes(i)) continue;
      for (const ref of findInstances(args[i], ObjectRef)) {
        if (ref.ownerId !== lender) continue; // passed on by the caller, who keeps it for good
        const id = ref.hex();
        this.borrowed.add(id, lender);
        this.loanFreer.register(ref, id);
        (ids ??= []).push(id);
      }
    }
    return ids;
  }

  /** Adds to a call's result the refs of `loans` this process may still hold. */
  reportHeld(result: ResultMessage, loans: string[]): void {
    const ids = this.borrowed.held(loans);
    if (ids.length === 0) return;
    result.held = { by: this.rt.config.ownerId, ids };
    this.collectIn(CORE_DEFAULTS.borrowGcMs);
  }

  /**
   * A full GC in `ms` (workers run with --expose-gc; elsewhere nothing), then again at doubling
   * intervals while loans are outstanding: a loan is released only once its refs are collected,
   * and an idle worker would otherwise not collect at all.
   */
  private collectIn(ms: number): void {
    if (!globalThis.gc || (this.gcSoon && this.gcDelay <= ms)) return;
    clearTimeout(this.gcSoon);
    this.gcDelay = ms;
    this.gcSoon = setTimeout(() => {
      this.gcSoon = undefined;
      globalThis.gc?.();
      if (this.borrowed.outstanding) this.collectIn(Math.min(2 * ms, CORE_DEFAULTS.borrowGcMaxMs));
    }, ms);
    this.gcSoon.unref();
  }

  /** A call ended with refs it was lent held here, but its result is not sent (it runs again): the owner hears of them alone. */
  tellHeld(held: Held): void {
    this.rt.ch.publish("", this.rt.topo.inbox(ownerOf(held.ids[0])), v8.serialize(held), { type: Kind.objectHeld });
  }

  /** A borrowed ref was collected: releases go out after this round of finalizers, one message per owner. */
  private loanDropped(id: string): void {
    this.borrowed.drop(id);
    this.releaseSoon ??= setImmediate(() => {
      this.releaseSoon = undefined;
      if (this.rt.isClosed) return;
      const by = this.rt.config.ownerId;
      for (const [owner, ids] of this.borrowed.takeReleases()) {
        this.rt.ch.publish("", this.rt.topo.inbox(owner), v8.serialize({ by, ids }), { type: Kind.objectRelease });
      }
    });
  }

  // ---- asking and answering ------------------------------------------------------------------

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

// A ref of this process's own object revived from a message (a call to itself, a value it got
// back) is one more live ref of it.
onRevived((ref) => {
  if (hasRuntime() && ref.ownerId === currentRuntime().config.ownerId) currentRuntime().objects.track(ref);
});
