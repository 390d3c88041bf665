// encode/decode: structured-clone values through v8, Buffers and Uint8Arrays as raw bytes.
import { decode, encode, hasMarkers, joined } from "../../src/serialization";

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
