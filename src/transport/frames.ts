/**
 * transport/frames: where warren works under amqplib, at the level of AMQP 0-9-1 frames, on the
 * path every task takes. With the caches cold (a sync round trip wakes each process once),
 * amqplib's general machinery was most of a process's time per message here; these are the lean
 * ways for the common cases, each falling back to amqplib for anything else. They reach into
 * amqplib 2.x's Connection and Channel; where those look different, amqplib does it all as always.
 */
import type * as amqp from "amqplib";

/** What of amqplib's Connection this file uses. */
type Connection = {
  freshChannel?: (...a: unknown[]) => number;
  channels?: ({ channel?: ChannelInternals; buffer?: Buffered } | null)[];
  stream?: NodeJS.ReadableStream & NodeJS.WritableStream & { cork?(): void; uncork?(): void };
  recvFrame?: () => unknown;
  accept?: { name?: string };
  rest?: Buffer;
  maxFrameSize?: number;
  frameMax?: number;
  sentSinceLastCheck?: boolean;
  recvSinceLastCheck?: boolean;
};
type Buffered = { readableLength: number; write: (chunk: Buffer, ...rest: unknown[]) => boolean };
type ChannelInternals = {
  ch?: number;
  connection?: Connection;
  handleMessage?: { name?: string };
  emit(event: string, ...args: unknown[]): boolean;
  listenerCount(event: string): number;
  closeWithError?(id: number, reason: string, code: number, error: Error): void;
};

/** AMQP 0-9-1: frame types, the basic class, and the properties the hot messages use. */
const FRAME_METHOD = 1;
const FRAME_HEADER = 2;
const FRAME_BODY = 3;
const FRAME_END = 0xce;
const BASIC = 60;
const PUBLISH = 40;
/** Property flags, in the order their values follow (AMQP 0-9-1, basic class). */
const CORRELATION_ID = 0x0400;
const REPLY_TO = 0x0200;
const MESSAGE_ID = 0x0080;
const TYPE = 0x0020;
const BASIC_DELIVER = (BASIC << 16) | 60;
const INTERNAL_ERROR = 541;
const HEADERS = 0x2000;

/** Installs the direct writes and the fast deliveries on a new connection. */
export function tuneFrames(conn: amqp.ChannelModel): void {
  const c = (conn as unknown as { connection?: Connection }).connection;
  if (!c) return;
  writeDirectly(c);
  readDeliveries(c);
}

// ---- writes ---------------------------------------------------------------------------------

/**
 * amqplib queues each frame in its channel's PassThrough stream, and a muxer moves what is queued
 * to the socket in a setImmediate, after the event loop's next poll. On a sync round trip that
 * machinery is most of a process's work (a publish spent about 50 µs before reaching the socket
 * here), so frames go to the socket directly instead, in the order they are sent: a channel's
 * frames are only queued while frames queued before are still there, which never happens unless
 * something other than this writes to its stream. The socket is corked until the end of the tick,
 * so a tick's frames (a result and its ack, a batch of 1000 publishes) leave in one writev: a
 * socket write is tens of microseconds on these machines.
 */
function writeDirectly(c: Connection): void {
  const stream = c.stream;
  const fresh = c.freshChannel;
  if (!fresh || !Array.isArray(c.channels) || !stream?.cork || !stream.uncork) return;
  let corked = false;
  const uncork = () => {
    corked = false;
    stream.uncork!();
  };
  c.freshChannel = function (this: Connection, ...args: unknown[]): number {
    const n = fresh.apply(this, args);
    const buffer = c.channels![n]?.buffer;
    if (!buffer || typeof buffer.readableLength !== "number") return n;
    const queue = buffer.write.bind(buffer);
    buffer.write = (chunk: Buffer, ...rest: unknown[]) => {
      if (buffer.readableLength > 0) return queue(chunk, ...rest);
      if (!corked) {
        corked = true;
        stream.cork!();
        process.nextTick(uncork);
      }
      (stream.write as (...a: unknown[]) => boolean)(chunk, ...rest);
      return true;
    };
    return n;
  };
}

// ---- deliveries -----------------------------------------------------------------------------

/**
 * A delivery is three frames (basic.deliver, its content header, its body). amqplib parses each
 * into an object, runs it through a per-channel state machine of closures and emits the message;
 * about 40 µs per delivery with cold caches here, against 28 for the same code in a process that
 * does nothing else. This reads a whole delivery that sits at the front of what the socket gave,
 * builds the same message amqplib would (fields, properties, content as a view of the read
 * buffer) and emits it on its channel, as amqplib does; anything else (another method, a content
 * header with AMQP headers, a body in several frames, a channel in the middle of a message, a
 * frame not yet whole) is left to amqplib's own reading, which goes on from where this stopped.
 */
function readDeliveries(c: Connection): void {
  const recv = c.recvFrame;
  const stream = c.stream;
  if (!recv || !stream || !Buffer.isBuffer(c.rest) || typeof c.maxFrameSize !== "number" || !Array.isArray(c.channels)) return;
  /** Appends what the socket has to `rest` (no copy when nothing was left over). */
  const pull = (): boolean => {
    const incoming = stream.read() as Buffer | null;
    if (incoming === null) return false;
    c.recvSinceLastCheck = true;
    c.rest = c.rest!.length === 0 ? incoming : Buffer.concat([c.rest!, incoming]);
    return true;
  };
  c.recvFrame = function (this: Connection) {
    for (;;) {
      const taken = takeDelivery(c);
      if (taken === true) continue;
      // The start of a delivery whose rest has not come yet: wait for it ('readable' calls again),
      // rather than let amqplib take its first frames and the rest with them.
      if (taken === MORE) {
        if (pull()) continue;
        return false;
      }
      return recv.call(this);
    }
  };
}

const MORE = "more";

/** Takes one whole delivery off the front of `c.rest` and emits it: true; MORE if more bytes would tell; false if it is not one. */
function takeDelivery(c: Connection): boolean | typeof MORE {
  const b = c.rest!;
  const max = c.maxFrameSize! > 0 ? c.maxFrameSize! : Infinity;
  // The method frame.
  if (b.length < 11) return b.length === 0 || b[0] === FRAME_METHOD ? MORE : false;
  if (b[0] !== FRAME_METHOD || b.readUInt32BE(7) !== BASIC_DELIVER) return false;
  const channel = b.readUInt16BE(1);
  const methodSize = b.readUInt32BE(3);
  const ch = c.channels![channel]?.channel;
  // Only while connection and channel are open and the channel is between messages (amqplib
  // swaps in its own `accept` functions while closing, and drops deliveries then).
  if (methodSize > max || c.accept?.name !== "mainAccept" || !ch || Object.prototype.hasOwnProperty.call(ch, "accept") ||
    ch.handleMessage?.name !== "acceptDeliveryOrReturn") return false;
  const header = 7 + methodSize + 1;
  // The content header, without AMQP headers.
  if (b.length < header + 7) return MORE;
  const headerSize = b.readUInt32BE(header + 3);
  if (b[header] !== FRAME_HEADER || b.readUInt16BE(header + 1) !== channel || headerSize > max || headerSize < 14) return false;
  if (b.length < header + 7 + 14) return MORE;
  const flags = b.readUInt16BE(header + 7 + 12);
  const size = b.readUInt32BE(header + 7 + 4) * 0x100000000 + b.readUInt32BE(header + 7 + 8);
  if (flags & HEADERS || size === 0) return false;
  // One body frame.
  const body = header + 7 + headerSize + 1;
  if (b.length < body + 7) return MORE;
  if (b[body] !== FRAME_BODY || b.readUInt16BE(body + 1) !== channel || b.readUInt32BE(body + 3) !== size || size > max) return false;
  const end = body + 7 + size + 1;
  if (b.length < end) return MORE;
  if (b[header - 1] !== FRAME_END || b[body - 1] !== FRAME_END || b[end - 1] !== FRAME_END) return false; // amqplib raises it
  const message = {
    fields: deliverFields(b, 11),
    properties: properties(b, header + 7 + 14, flags),
    content: b.subarray(body + 7, body + 7 + size),
  };
  c.rest = b.subarray(end);
  try {
    ch.emit("delivery", message);
  } catch (err) {
    // As amqplib: a consumer that throws closes its channel (or goes to 'handler-error').
    if (ch.listenerCount("handler-error") > 0) setImmediate(() => ch.emit("handler-error", err, "delivery"));
    else ch.closeWithError?.(BASIC_DELIVER, "Error while processing message", INTERNAL_ERROR, err instanceof Error ? err : new Error(String(err)));
  }
  return true;
}


function deliverFields(b: Buffer, at: number): amqp.ConsumeMessage["fields"] {
  const str = () => {
    const n = b[at];
    return b.toString("utf8", at + 1, (at += 1 + n));
  };
  const consumerTag = str();
  const deliveryTag = b.readUInt32BE(at) * 0x100000000 + b.readUInt32BE(at + 4);
  const redelivered = (b[at + 8] & 1) === 1;
  at += 9;
  const exchange = str();
  return { consumerTag, deliveryTag, redelivered, exchange, routingKey: str() };
}

/** The basic properties as amqplib decodes them (every field, undefined when absent; none: `{}`). */
function properties(b: Buffer, at: number, flags: number): amqp.ConsumeMessage["properties"] {
  if (flags === 0) return {} as amqp.ConsumeMessage["properties"];
  const str = (flag: number) => {
    if (!(flags & flag)) return undefined;
    const n = b[at];
    return b.toString("utf8", at + 1, (at += 1 + n));
  };
  const octet = (flag: number) => (flags & flag ? b[at++] : undefined);
  const contentType = str(0x8000);
  const contentEncoding = str(0x4000);
  const deliveryMode = octet(0x1000);
  const priority = octet(0x0800);
  const correlationId = str(CORRELATION_ID);
  const replyTo = str(REPLY_TO);
  const expiration = str(0x0100);
  const messageId = str(MESSAGE_ID);
  let timestamp: number | undefined;
  if (flags & 0x0040) {
    timestamp = b.readUInt32BE(at) * 0x100000000 + b.readUInt32BE(at + 4);
    at += 8;
  }
  const type = str(TYPE);
  const userId = str(0x0010);
  const appId = str(0x0008);
  const clusterId = str(0x0004);
  return { contentType, contentEncoding, headers: undefined, deliveryMode, priority, correlationId, replyTo, expiration, messageId, timestamp, type, userId, appId, clusterId } as unknown as amqp.ConsumeMessage["properties"];
}

// ---- small publishes ------------------------------------------------------------------------

/**
 * Publishing a small message without amqplib's general path, for the messages every task costs
 * (the task, its result). amqplib builds a fields object of every method field and property,
 * encodes the method, the properties and the body into three buffers and copies them into a
 * fourth: on a sync round trip, each process did that with cold caches in about 25 µs of its
 * ~130. Here the three frames (AMQP 0-9-1 basic.publish, its content header, one body frame) are
 * written into one buffer, with only the properties warren's hot messages use.
 *
 * The frames are handed to the channel's own outgoing stream (writeDirectly puts them straight
 * on the corked socket), so they keep their place among the channel's other frames.
 * Anything else (an empty body or one over a frame, a closed or confirm channel, an amqplib whose
 * internals look different) goes through amqplib's `publish`, which also raises its usual errors.
 */

export interface SmallProperties {
  messageId?: string;
  type?: string;
  correlationId?: string;
  replyTo?: string;
  /** Return the message (the channel's 'return' event) if no queue takes it. */
  mandatory?: boolean;
}


export function publishSmall(ch: amqp.Channel, exchange: string, routingKey: string, body: Buffer, props: SmallProperties = {}): void {
  const c = ch as unknown as ChannelInternals;
  const conn = c.connection;
  const out = conn?.channels?.[c.ch ?? -1]?.buffer;
  // amqplib replaces an instance's sendMessage once its channel is closed; its publish then throws.
  // A confirm channel counts its publishes.
  const plain = !Object.prototype.hasOwnProperty.call(ch, "sendMessage") && !("waitForConfirms" in ch);
  const exchangeLength = Buffer.byteLength(exchange);
  const keyLength = Buffer.byteLength(routingKey);
  let flags = 0;
  let propsSize = 0;
  let tooLong = exchangeLength > 255 || keyLength > 255;
  for (const [flag, name] of SMALL_PROPERTIES) {
    const value = props[name];
    if (value === undefined) continue;
    const n = Buffer.byteLength(value);
    tooLong ||= n > 255;
    flags |= flag;
    propsSize += 1 + n;
  }
  if (!out || !plain || typeof c.ch !== "number" || !conn?.frameMax || body.length === 0 || body.length > conn.frameMax - 8 || tooLong) {
    ch.publish(exchange, routingKey, body, props);
    return;
  }
  const methodSize = 4 + 2 + 1 + exchangeLength + 1 + keyLength + 1;
  const headerSize = 2 + 2 + 8 + 2 + propsSize;
  const buf = Buffer.allocUnsafe(7 + methodSize + 1 + 7 + headerSize + 1 + 7 + body.length + 1);
  let at = frameStart(buf, 0, FRAME_METHOD, c.ch, methodSize);
  at = buf.writeUInt16BE(BASIC, at);
  at = buf.writeUInt16BE(PUBLISH, at);
  at = buf.writeUInt16BE(0, at); // reserved (ticket)
  at = shortstr(buf, at, exchange);
  at = shortstr(buf, at, routingKey);
  at = buf.writeUInt8(props.mandatory ? 1 : 0, at); // bits: mandatory, immediate
  at = buf.writeUInt8(FRAME_END, at);
  at = frameStart(buf, at, FRAME_HEADER, c.ch, headerSize);
  at = buf.writeUInt16BE(BASIC, at);
  at = buf.writeUInt16BE(0, at); // weight
  at = buf.writeUInt32BE(0, at); // body size, high 32 bits (a body fits in one frame)
  at = buf.writeUInt32BE(body.length, at);
  at = buf.writeUInt16BE(flags, at);
  for (const [, name] of SMALL_PROPERTIES) if (props[name] !== undefined) at = shortstr(buf, at, props[name]);
  at = buf.writeUInt8(FRAME_END, at);
  at = frameStart(buf, at, FRAME_BODY, c.ch, body.length);
  at += body.copy(buf, at);
  buf.writeUInt8(FRAME_END, at);
  conn.sentSinceLastCheck = true; // for amqplib's heartbeat check
  out.write(buf);
}

/** The properties publishSmall writes, with their flags, in the order their values follow. */
const SMALL_PROPERTIES = [[CORRELATION_ID, "correlationId"], [REPLY_TO, "replyTo"], [MESSAGE_ID, "messageId"], [TYPE, "type"]] as const;

/** A frame's type, channel and payload size; returns where its payload starts. */
function frameStart(buf: Buffer, at: number, type: number, channel: number, size: number): number {
  at = buf.writeUInt8(type, at);
  at = buf.writeUInt16BE(channel, at);
  return buf.writeUInt32BE(size, at);
}

/** An AMQP short string (its byte length, then its UTF-8 bytes, at most 255); returns where it ends. */
function shortstr(buf: Buffer, at: number, s: string): number {
  const n = buf.write(s, at + 1, "utf8");
  buf[at] = n;
  return at + 1 + n;
}
