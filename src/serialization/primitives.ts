/**
 * v8's own bytes for the values most small tasks take and return (numbers, booleans, null,
 * undefined, short ASCII strings), written and read here without a v8 Serializer: creating one
 * costs a few microseconds with the caches cold, more than the value. The bytes are exactly
 * what `v8.serialize` writes (checked when this module loads; if this Node's v8 writes something
 * else, everything goes through v8), so `v8.deserialize` reads them too.
 */
import * as v8 from "node:v8";

const HEADER = v8.serialize(null).subarray(0, 2); // 0xFF, then v8's format version
const INT32 = 0x49; // 'I', zigzag varint
const DOUBLE = 0x4e; // 'N', 8 bytes little-endian
const ONE_BYTE_STRING = 0x22; // '"', varint length, latin1 bytes
const TRUE = 0x54;
const FALSE = 0x46;
const NULL = 0x30;
const UNDEFINED = 0x5f;
/** Longer strings are rarer, and a v8 Serializer's cost is small next to them. */
const MAX_STRING = 1024;

/** Not a value this module reads: decode it with v8. */
export const NOT_PRIMITIVE = Symbol("not a primitive");

export function encodePrimitive(value: unknown): Buffer | undefined {
  if (!enabled) return undefined;
  switch (typeof value) {
    case "number": {
      if ((value | 0) === value && !Object.is(value, -0)) return varint(INT32, ((value << 1) ^ (value >> 31)) >>> 0, 0);
      const b = tagged(DOUBLE, 8);
      b.writeDoubleLE(value, 3);
      return b;
    }
    case "boolean":
      return tagged(value ? TRUE : FALSE, 0);
    case "undefined":
      return tagged(UNDEFINED, 0);
    case "string":
      if (value.length > MAX_STRING || Buffer.byteLength(value) !== value.length) return undefined; // not ASCII
      return varint(ONE_BYTE_STRING, value.length, value.length, value);
    case "object":
      return value === null ? tagged(NULL, 0) : undefined;
    default:
      return undefined;
  }
}

export function decodePrimitive(buf: Uint8Array): unknown {
  if (buf.length < 3 || buf[0] !== HEADER[0] || buf[1] !== HEADER[1]) return NOT_PRIMITIVE;
  switch (buf[2]) {
    case TRUE: return buf.length === 3 ? true : NOT_PRIMITIVE;
    case FALSE: return buf.length === 3 ? false : NOT_PRIMITIVE;
    case NULL: return buf.length === 3 ? null : NOT_PRIMITIVE;
    case UNDEFINED: return buf.length === 3 ? undefined : NOT_PRIMITIVE;
    case DOUBLE: return buf.length === 11 ? Buffer.from(buf.buffer, buf.byteOffset, buf.length).readDoubleLE(3) : NOT_PRIMITIVE;
    case INT32: {
      const [n, end] = readVarint(buf, 3);
      return end === buf.length && n <= 0xffffffff ? (n >>> 1) ^ -(n & 1) : NOT_PRIMITIVE;
    }
    case ONE_BYTE_STRING: {
      const [n, start] = readVarint(buf, 3);
      return start + n === buf.length ? Buffer.from(buf.buffer, buf.byteOffset, buf.length).toString("latin1", start) : NOT_PRIMITIVE;
    }
    default:
      return NOT_PRIMITIVE;
  }
}

function tagged(tag: number, extra: number): Buffer {
  const b = Buffer.allocUnsafe(3 + extra);
  b[0] = HEADER[0];
  b[1] = HEADER[1];
  b[2] = tag;
  return b;
}

/** The header, `tag`, `n` as a varint, then `extra` bytes of `ascii`. */
function varint(tag: number, n: number, extra: number, ascii?: string): Buffer {
  let bytes = 1;
  for (let v = n >>> 7; v > 0; v >>>= 7) bytes++;
  const b = tagged(tag, bytes + extra);
  let at = 3;
  for (let v = n; ; ) {
    const low = v & 0x7f;
    v >>>= 7;
    b[at++] = v > 0 ? low | 0x80 : low;
    if (v === 0) break;
  }
  if (ascii !== undefined) b.write(ascii, at, "latin1");
  return b;
}

function readVarint(buf: Uint8Array, at: number): [number, number] {
  let n = 0;
  for (let shift = 0; at < buf.length && shift < 35; shift += 7) {
    const byte = buf[at++];
    n += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [n, at];
  }
  return [-1, -1];
}

const SAMPLES: unknown[] = [0, 1, -1, 63, 64, -65, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, 1.5, -0, NaN, Infinity, true, false, null, undefined, "", "abc", "x".repeat(200)];
let enabled = true;
enabled = SAMPLES.every((v) => {
  const mine = encodePrimitive(v);
  return mine !== undefined && mine.equals(v8.serialize(v)) && Object.is(decodePrimitive(mine), v);
});
