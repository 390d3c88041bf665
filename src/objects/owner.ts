/**
 * The owner's table: every object this process created (puts and the returns of tasks it
 * submitted), pending or ready, and who waits for it. Borrowers in other processes ask the owner
 * through its inbox; the answer is one of the three forms of `StoredObject`.
 */
import type { StoredObject } from "../wire/messages";

interface Entry {
  value?: StoredObject;
  waiters?: Set<(value: StoredObject) => void>;
  /** Serialized into a message: another process may hold it, so only the owner's exit frees it. */
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
    this.entries.set(id, { escaped: false });
  }

  ready(id: string, value: StoredObject): void {
    this.entries.set(id, { value, escaped: false });
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

  markEscaped(id: string): void {
    const e = this.entries.get(id);
    if (e) e.escaped = true;
  }

  /** Ray's object columns for the state API. */
  rows(): { object_id: string; object_size: number | null; task_status: string; reference_type: string; location: string }[] {
    return [...this.entries].map(([id, e]) => ({
      object_id: id,
      object_size: !e.value ? null : "inline" in e.value ? e.value.inline.length : "node" in e.value ? e.value.size : null,
      task_status: !e.value ? "PENDING" : "error" in e.value ? "FAILED" : "FINISHED",
      reference_type: "LOCAL_REFERENCE",
      location: !e.value ? "" : "node" in e.value ? `node:${e.value.node}` : "inline" in e.value ? "owner" : "",
    }));
  }

  /** Forgets an object nobody else can hold; returns its value so a stored copy can be freed. */
  releaseIfPrivate(id: string): StoredObject | undefined | false {
    const e = this.entries.get(id);
    if (!e || e.escaped || e.waiters?.size) return false;
    this.entries.delete(id);
    return e.value;
  }
}
