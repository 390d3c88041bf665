/**
 * wire: a node's object stream (node/object-server.ts serves it, core/transfer.ts reads it). The
 * asker sends one line of JSON, `{"id","from"}\n` (`from`: the node that keeps a copy, "" for
 * none); the answer is a head of HEAD_BYTES, [u8 0 ok | 1 failed] [f64 n], then n bytes: the
 * stored value, or the UTF-8 message of what failed.
 */
export const HEAD_BYTES = 9;

export interface StreamRequest {
  id: string;
  from: string;
}

export function streamHead(ok: boolean, length: number): Buffer {
  const h = Buffer.allocUnsafe(HEAD_BYTES);
  h.writeUInt8(ok ? 0 : 1, 0);
  h.writeDoubleLE(length, 1);
  return h;
}

export function readStreamHead(h: Buffer): { ok: boolean; length: number } {
  return { ok: h.readUInt8(0) === 0, length: h.readDoubleLE(1) };
}
