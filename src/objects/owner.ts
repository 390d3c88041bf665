/**
 * The owner's table: every object this process created (puts and the returns of tasks it
 * submitted), pending or ready, who waits for it, and what keeps it alive (Ray's reference
 * counter, owner side). Borrowers in other processes ask the owner through its inbox; the answer
 * is one of the three forms of `StoredObject`.
 *
 * An object may be freed once nothing can reach its id any more: no live ObjectRef of it in this
 * process (`local`), no task of this process that carries it in its arguments, unfinished or kept
 * as lineage (`pins`), no borrower that reported holding it after such a task and has not said it
 * dropped it (`borrowers`), and it was never put inside another value (`escaped`: then only the
 * owner's exit frees it).
 */
import type { StoredObject } from "../wire/messages";

interface Entry {
  value?: StoredObject;
  waiters?: Set<(value: StoredObject) => void>;
  local: number;
  pins: number;
  borrowers?: Set<string>;
  escaped: boolean;
}

export class OwnerTable {
  private readonly entries = new Map<string, Entry>();

  get size(): number {
    return this.entries.size;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  pending(id: string): void {
    this.entries.set(id, { local: 0, pins: 0, escaped: false });
  }

  ready(id: string, value: StoredObject): void {
    this.entries.set(id, { value, local: 0, pins: 0, escaped: false });
  }

  /** Makes a ready object pending again (it is being made anew: lineage reconstruction). */
  reset(id: string): void {
    const e = this.entries.get(id);
    if (e) e.value = undefined;
  }

  /** Sets the value of a pending object; false if unknown or already set (a late duplicate). */
  resolve(id: string, value: StoredObject): boolean {
    const e = this.entries.get(id);
    if (!e || e.value) return false;
    e.value = value;
    const waiters = e.waiters;
    e.waiters = undefined;
    if (waiters) for (const w of waiters) w(value);
    return true;
  }

  /** The value now, if ready. */
  peek(id: string): StoredObject | undefined {
    return this.entries.get(id)?.value;
  }

  /**
   * Calls `fn` when the object is ready (at once if it is). Returns a function that takes the
   * call back (wait() gives up on objects it no longer needs), or false if the id is unknown.
   */
  onReady(id: string, fn: (value: StoredObject) => void): (() => void) | false {
    const e = this.entries.get(id);
    if (!e) return false;
    if (e.value) {
      fn(e.value);
      return () => undefined;
    }
    const waiters = (e.waiters ??= new Set());
    waiters.add(fn);
    return () => waiters.delete(fn);
  }

  /** Put inside another value (a put, a return value): anyone may hold it, so only the owner's exit frees it. */
  markEscaped(id: string): void {
    const e = this.entries.get(id);
    if (e) e.escaped = true;
  }

  /** A live ObjectRef of it was made in this process. */
  addLocal(id: string): boolean {
    const e = this.entries.get(id);
    if (e) e.local++;
    return e !== undefined;
  }

  /** A task carries it in its arguments (until `unpin`). */
  pin(id: string): boolean {
    const e = this.entries.get(id);
    if (e) e.pins++;
    return e !== undefined;
  }

  /** Process `by` reported holding it when a task it was passed to ended. */
  addBorrower(id: string, by: string): void {
    const e = this.entries.get(id);
    if (e) (e.borrowers ??= new Set()).add(by);
  }

  // Each of these takes back one reason to keep the object; the object is forgotten if that was
  // the last, and its value returned so a stored copy can be freed (false: still kept).

  dropLocal(id: string): StoredObject | undefined | false {
    const e = this.entries.get(id);
    if (e) e.local--;
    return this.freeIfUnreachable(id, e);
  }

  unpin(id: string): StoredObject | undefined | false {
    const e = this.entries.get(id);
    if (e) e.pins--;
    return this.freeIfUnreachable(id, e);
  }

  release(id: string, by: string): StoredObject | undefined | false {
    const e = this.entries.get(id);
    if (!e?.borrowers?.delete(by)) return false;
    return this.freeIfUnreachable(id, e);
  }

  private freeIfUnreachable(id: string, e: Entry | undefined): StoredObject | undefined | false {
    if (!e || e.escaped || e.local > 0 || e.pins > 0 || e.borrowers?.size || e.waiters?.size) return false;
    this.entries.delete(id);
    return e.value;
  }

  /** Ray's object columns for the state API. */
  rows(): { object_id: string; object_size: number | null; task_status: string; reference_type: string; location: string; borrowers: number }[] {
    return [...this.entries].map(([id, e]) => ({
      object_id: id,
      object_size: !e.value ? null : "inline" in e.value ? e.value.inline.length : "node" in e.value ? e.value.size : null,
      task_status: !e.value ? "PENDING" : "error" in e.value ? "FAILED" : "FINISHED",
      reference_type: e.escaped ? "CAPTURED_IN_OBJECT" : e.local === 0 && e.pins > 0 ? "USED_BY_PENDING_TASK" : "LOCAL_REFERENCE",
      location: !e.value ? "" : "node" in e.value ? `node:${e.value.node}` : "inline" in e.value ? "owner" : "",
      borrowers: e.borrowers?.size ?? 0,
    }));
  }
}
