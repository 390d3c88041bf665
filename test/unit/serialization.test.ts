// encode/decode: structured-clone values through v8, Buffers and Uint8Arrays as raw bytes.
import * as v8 from "node:v8";
import { decode, encode, hasMarkers, joined } from "../../src/serialization";
import { NOT_PRIMITIVE, decodePrimitive, encodePrimitive } from "../../src/serialization/primitives";

test("a Buffer or Uint8Array value is its raw bytes behind a header, and comes back as the same type", () => {
  const buf = Buffer.from("__warren is not a marker here");
  const parts = encode(buf);
  expect(parts).toHaveLength(2);
  expect(parts[1].buffer).toBe(buf.buffer); // the value's own memory, not a copy
  expect(hasMarkers(parts)).toBe(false);
  const encoded = joined(parts);
  expect(encoded.length).toBe(buf.length + 8);
  expect(hasMarkers(encoded)).toBe(false);
  const back = decode(encoded) as Buffer;
  expect(Buffer.isBuffer(back)).toBe(true);
  expect(back.equals(buf)).toBe(true);

  const u8 = new Uint8Array([0, 255, 7]);
  const u8back = decode(joined(encode(u8)));
  expect(Buffer.isBuffer(u8back)).toBe(false);
  expect(u8back).toBeInstanceOf(Uint8Array);
  expect([...(u8back as Uint8Array)]).toEqual([0, 255, 7]);
});

test("decode copies raw bytes out, so the source (a store's view) may be reused", () => {
  const encoded = joined(encode(Buffer.from([1, 2, 3])));
  const back = decode(encoded) as Buffer;
  encoded.fill(9);
  expect([...back]).toEqual([1, 2, 3]);
});

test("other values, Buffers nested inside them included, still go through v8", () => {
  const value = { b: Buffer.from([1, 2]), n: 1n, m: new Map([[1, "a"]]) };
  const [encoded] = encode(value);
  expect(encoded[0]).toBe(0xff);
  expect(decode(encoded)).toEqual(value);
  expect(decode(joined(encode(new Float64Array([1.5]))))).toEqual(new Float64Array([1.5]));
});

test("numbers, booleans, null, undefined and short ASCII strings are v8's own bytes, written and read without v8", () => {
  const values = [0, 1, -1, 63, 64, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, 1.5, -0, NaN, -Infinity, true, false, null, undefined, "", "small_value", "x".repeat(1024)];
  for (const v of values) {
    const mine = encodePrimitive(v)!;
    expect(mine).toBeDefined();
    expect([...mine]).toEqual([...v8.serialize(v)]);
    expect(Object.is(decodePrimitive(mine), v)).toBe(true);
    expect(Object.is(decode(joined(encode(v))), v)).toBe(true);
  }
  // v8's one-byte strings beyond ASCII are read too; the rest is left to v8.
  expect(decodePrimitive(v8.serialize("é"))).toBe("é");
  for (const v of ["é", "日本", "x".repeat(1025), {}, [1], 1n]) expect(encodePrimitive(v)).toBeUndefined();
  for (const v of ["日本", { a: 1 }, [1], 1n, new Date(0)]) expect(decodePrimitive(v8.serialize(v))).toBe(NOT_PRIMITIVE);
  expect(decodePrimitive(Buffer.from([...v8.serialize(7), 0]))).toBe(NOT_PRIMITIVE); // trailing bytes: not what v8 wrote
});
