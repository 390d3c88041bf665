/**
 * objects: ObjectRefs (their ids are described in wire/ids.ts), the owner's table of objects,
 * and the node's LMDB store.
 */
import { inspect } from "node:util";
import { registerRevival } from "../serialization";
import { ownerOf, taskOf } from "../wire/ids";

export const REF_KEY = "__warrenRef";

export class ObjectRef<T = unknown> {
  /** The object id (hex). The only enumerable field, so v8 carries it as `{ __warrenRef: id }`. */
  readonly __warrenRef: string;
  /** Phantom: the value's type, for `get`. Never set. */
  declare readonly __valueType?: T;
  /** The last wait() call that saw this ref (a private field: v8 serialization leaves it out). */
  #seenBy = 0;

  constructor(id: string) {
    this.__warrenRef = id;
  }

  hex(): string {
    return this.__warrenRef;
  }

  /**
   * @internal Marks the ref as seen by call `call`; false if it was already: wait() finds a ref
   * passed twice so, without hashing every id of a long list on every call.
   */
  seenBy(call: number): boolean {
    if (this.#seenBy === call) return false;
    this.#seenBy = call;
    return true;
  }

  /** The id of the process that owns this object (16 hex digits). */
  get ownerId(): string {
    return ownerOf(this.__warrenRef);
  }

  /** The task that created it (32 hex digits). */
  get taskId(): string {
    return taskOf(this.__warrenRef);
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

/** Told of every ObjectRef revived from a message: the runtime counts those of its own objects. */
let revived: (ref: ObjectRef) => void = () => undefined;

export function onRevived(fn: (ref: ObjectRef) => void): void {
  revived = fn;
}

registerRevival(REF_KEY, (id: string) => {
  const ref = new ObjectRef(id);
  revived(ref);
  return ref;
});
