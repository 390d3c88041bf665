/**
 * objects: ObjectRefs, their ids, the owner's table of objects, and the node's LMDB store.
 *
 * An object id is 40 hex digits: the owner's id (16), a per-owner counter (16), and the return
 * index (8). The owner is therefore readable from any ref, so a borrower always knows whose
 * inbox to ask, and ids are minted with no random draw on the hot path.
 */
import { inspect } from "node:util";
import { randomBytes } from "node:crypto";
import { registerRevival } from "../serialization";

export const REF_KEY = "__warrenRef";

export class ObjectRef<T = unknown> {
  /** The object id (hex). The only enumerable field, so v8 carries it as `{ __warrenRef: id }`. */
  readonly __warrenRef: string;
  /** Phantom: the value's type, for `get`. Never set. */
  declare readonly __valueType?: T;

  constructor(id: string) {
    this.__warrenRef = id;
  }

  hex(): string {
    return this.__warrenRef;
  }

  /** The id of the process that owns this object (16 hex digits). */
  get ownerId(): string {
    return this.__warrenRef.slice(0, 16);
  }

  /** The task that created it (32 hex digits). */
  get taskId(): string {
    return this.__warrenRef.slice(0, 32);
  }

  toString(): string {
    return `ObjectRef(${this.__warrenRef})`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

registerRevival(REF_KEY, (id: string) => new ObjectRef(id));

export function newOwnerId(): string {
  return randomBytes(8).toString("hex");
}

/** Mints task ids for one owner: `ownerId + counter`. */
export class TaskIds {
  private counter = 0;
  constructor(readonly ownerId: string) {}

  next(): string {
    return this.ownerId + (++this.counter).toString(16).padStart(16, "0");
  }
}

/** Return `index` of task `taskId` (1-based; 0 is a `put`). */
export function objectId(taskId: string, index: number): string {
  return taskId + index.toString(16).padStart(8, "0");
}
