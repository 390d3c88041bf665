/**
 * serialization: how values cross processes.
 *
 * Values use the structured-clone algorithm (`v8.serialize`). An ObjectRef or actor handle is a
 * class instance whose only own enumerable property is a marker (`__warrenRef`, `__warrenActor`);
 * v8 writes it as a plain one-key object, and `decode` turns such objects back into live
 * instances. The revival walk only runs when the marker's bytes occur in the buffer (a memchr
 * scan), so values without refs pay nothing beyond v8 itself.
 *
 * A value that is itself a Buffer or Uint8Array (the large-object case: files, tensors) is its raw
 * bytes behind an 8-byte header instead: v8's serializer copies a 256 MiB buffer several times as
 * its output grows (300 ms here, against 20 ms for one copy). v8's output always begins with 0xFF,
 * so a leading 0x00 tells the two apart.
 */
import * as v8 from "node:v8";
import { types } from "node:util";
import * as errors from "../errors";
import { SerializationError } from "../errors";
import { NOT_PRIMITIVE, decodePrimitive, encodePrimitive } from "./primitives";

export const MARKER = "__warren";
const MARKER_BYTES = Buffer.from(MARKER, "latin1");

/** marker key -> builds the live object from the marker's value. */
const revivers = new Map<string, (payload: any) => unknown>();

/** Registers a class that travels as `{ [key]: payload }` (ObjectRef, actor handles). */
export function registerRevival(key: string, revive: (payload: any) => unknown): void {
  revivers.set(key, revive);
}

const RAW_HEADER = Buffer.from("\0warren\0", "latin1"); // the last byte: 1 Buffer, 2 Uint8Array
const RAW_BUFFER = 1;
const RAW_UINT8ARRAY = 2;

function isRaw(buf: Uint8Array): boolean {
  return buf[0] === 0 && buf.length >= RAW_HEADER.length && Buffer.from(buf.buffer, buf.byteOffset, 7).equals(RAW_HEADER.subarray(0, 7));
}

/**
 * A value's bytes, in parts to be written one after another: a raw value is its header and then
 * the value's own memory, not copied (a fresh 256 MiB buffer costs 0.3 s of page faults here).
 * Write them before the value can change; `joined` makes one buffer of them.
 */
export function encode(value: unknown, what = "value"): Buffer[] {
  if (types.isUint8Array(value)) {
    const header = Buffer.from(RAW_HEADER);
    header[RAW_HEADER.length - 1] = Buffer.isBuffer(value) ? RAW_BUFFER : RAW_UINT8ARRAY;
    return [header, Buffer.from(value.buffer, value.byteOffset, value.byteLength)];
  }
  const primitive = encodePrimitive(value);
  if (primitive) return [primitive];
  try {
    return [v8.serialize(value)];
  } catch (err) {
    throw new SerializationError(
      `${what} cannot be serialized: ${(err as Error).message}. Only structured-clone values cross ` +
        "processes (plain data, Buffers, typed arrays, Map, Set, Date, BigInt, errors, ObjectRefs, " +
        "actor handles); functions, sockets and class behaviour do not: keep them in a module the " +
        "worker loads and pass data instead.",
      { cause: err },
    );
  }
}

export function joined(parts: Buffer[]): Buffer {
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

export function byteLength(parts: Buffer[]): number {
  return parts.reduce((n, p) => n + p.length, 0);
}

/** Whether an ObjectRef or handle marker may be inside (a raw value never holds one). */
export function hasMarkers(buf: Buffer | Buffer[]): boolean {
  if (Array.isArray(buf)) return buf.length === 1 && hasMarkers(buf[0]);
  return !isRaw(buf) && buf.indexOf(MARKER_BYTES) !== -1;
}

/**
 * v8's deserializer returns an aligned typed array as a view into its input, which for a store
 * read is lmdb's reused buffer: the next read would overwrite it. Such views are copied.
 */
class OwningDeserializer extends v8.DefaultDeserializer {
  constructor(private readonly input: Uint8Array) {
    super(input as Buffer);
  }

  _readHostObject(): unknown {
    const value = (v8.DefaultDeserializer.prototype as any)._readHostObject.call(this);
    if (!ArrayBuffer.isView(value) || value.buffer !== this.input.buffer) return value;
    return Buffer.isBuffer(value) ? Buffer.from(value) : (value as unknown as Float64Array).slice();
  }
}

/**
 * The value of `encode`'s bytes; never a view into `buf`, which may be a store's transient view,
 * unless `owned` (`buf` is the caller's to give away): a raw value or a typed array is then a
 * view, not a copy.
 */
export function decode(buf: Buffer | Uint8Array, owned = false): unknown {
  if (isRaw(buf)) {
    const bytes = buf.subarray(RAW_HEADER.length);
    if (owned) return buf[RAW_HEADER.length - 1] === RAW_BUFFER ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length) : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
    return buf[RAW_HEADER.length - 1] === RAW_BUFFER ? Buffer.from(bytes) : new Uint8Array(bytes);
  }
  const primitive = decodePrimitive(buf);
  if (primitive !== NOT_PRIMITIVE) return primitive;
  let value: unknown;
  if (owned) value = v8.deserialize(buf);
  else {
    const des = new OwningDeserializer(buf);
    des.readHeader();
    value = des.readValue();
  }
  return hasMarkers(buf as Buffer) ? revive(value) : value;
}

/** Replaces marker objects with live instances, in place (`decode` does it for values with markers). */
export function revive(value: unknown): unknown {
  if (value === null || typeof value !== "object" || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = revive(value[i]);
    return value;
  }
  // Realm-independent checks: v8.deserialize builds objects in Node's own realm, which is not
  // the caller's under jest or vm.
  if (types.isMap(value)) {
    for (const [k, v] of value) value.set(k, revive(v));
    return value;
  }
  if (types.isSet(value)) {
    const items = [...value].map(revive);
    value.clear();
    for (const item of items) value.add(item);
    return value;
  }
  if (!isPlainObject(value)) return value;
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0].startsWith(MARKER)) {
    const reviver = revivers.get(keys[0]);
    if (reviver) return reviver(revive((value as any)[keys[0]]));
  }
  for (const k of keys) (value as any)[k] = revive((value as any)[k]);
  return value;
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

/** Every instance of `cls` reachable in `value`, through what v8 serializes: arrays, Maps, Sets, own enumerable fields. */
export function findInstances<T>(value: unknown, cls: abstract new (...a: any[]) => T, out: T[] = []): T[] {
  if (value === null || typeof value !== "object" || ArrayBuffer.isView(value)) return out;
  if (value instanceof cls) out.push(value as T);
  else if (Array.isArray(value) || types.isSet(value)) for (const v of value as Iterable<unknown>) findInstances(v, cls, out);
  else if (types.isMap(value)) for (const v of (value as Map<unknown, unknown>).values()) findInstances(v, cls, out);
  else for (const k of Object.keys(value)) findInstances((value as any)[k], cls, out);
  return out;
}

// ---- errors -------------------------------------------------------------------------------

export interface EncodedError {
  name: string;
  message: string;
  stack: string;
  fields: Record<string, unknown>;
  cause?: EncodedError | { value: unknown };
  /** The class of a user's error (neither built-in nor warren's), to find it again where it is decoded. */
  className?: string;
}

type ErrorClass = new (...a: any[]) => Error;
/** The class name of a user's error decoded where its class is unknown (a node passing it on): kept for the next decode. */
const CLASS_NAME = Symbol("warren.errorClass");
let userErrorClass: (className: string) => ErrorClass | undefined = () => undefined;

/** How a process finds a user's error class by its name (core/functions.ts: what the modules it loaded export). */
export function findUserErrorClasses(find: (className: string) => ErrorClass | undefined): void {
  userErrorClass = find;
}

const BUILTIN_ERRORS: Record<string, new (m?: string) => Error> = {
  Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError,
};
const WARREN_ERRORS = errors as unknown as Record<string, new (...a: any[]) => Error>;

/** A thrown value as plain data: name, message, stack, own enumerable fields, cause chain. */
export function encodeError(err: unknown): EncodedError {
  if (!(err instanceof Error)) {
    return { name: "Error", message: String(err), stack: "", fields: {}, cause: { value: cloneable(err) } };
  }
  const fields: Record<string, unknown> = {};
  for (const k of Object.keys(err)) {
    if (k === "cause") continue;
    const v = cloneable((err as any)[k]);
    if (v !== undefined) fields[k] = v;
  }
  const encoded: EncodedError = { name: err.name, message: err.message, stack: err.stack ?? "", fields };
  const ctor = err.constructor as ErrorClass | undefined;
  const className = (err as { [CLASS_NAME]?: string })[CLASS_NAME] ??
    (typeof ctor === "function" && ctor.name && BUILTIN_ERRORS[ctor.name] !== ctor && WARREN_ERRORS[ctor.name] !== ctor ? ctor.name : undefined);
  if (className) encoded.className = className;
  if (err.cause !== undefined) encoded.cause = err.cause instanceof Error ? encodeError(err.cause) : { value: cloneable(err.cause) };
  return encoded;
}

/**
 * Rebuilds an error: built-in and warren classes as themselves, a user's class as itself where
 * this process has loaded a module exporting it (findUserErrorClasses), others as an Error with
 * the original name. Fields come back; the constructor is not run.
 */
export function decodeError(e: EncodedError): Error {
  const user = e.className !== undefined ? userErrorClass(e.className) : undefined;
  const cls = user ?? BUILTIN_ERRORS[e.name] ?? (isErrorClass(WARREN_ERRORS[e.name]) ? WARREN_ERRORS[e.name] : Error);
  const err: Error = Object.create(cls.prototype);
  if (e.className !== undefined && !user) Object.defineProperty(err, CLASS_NAME, { value: e.className });
  Object.defineProperty(err, "message", { value: e.message, writable: true, configurable: true });
  Object.defineProperty(err, "stack", { value: e.stack, writable: true, configurable: true });
  if (err.name !== e.name) Object.defineProperty(err, "name", { value: e.name, writable: true, configurable: true });
  Object.assign(err, e.fields);
  if (e.cause) {
    const cause = "value" in e.cause ? e.cause.value : decodeError(e.cause);
    Object.defineProperty(err, "cause", { value: cause, writable: true, configurable: true });
  }
  return err;
}

function isErrorClass(c: unknown): c is ErrorClass {
  return typeof c === "function" && c.prototype instanceof Error;
}

function cloneable(v: unknown): unknown {
  try {
    v8.serialize(v);
    return v;
  } catch {
    return undefined;
  }
}
