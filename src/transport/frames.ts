/**
 * transport/frames: where warren works under amqplib, at the level of AMQP 0-9-1 frames, on the
 * path every task takes. With the caches cold (a sync round trip wakes each process once),
 * amqplib's general machinery was most of a process's time per message here; these are the lean
 * ways for the common cases, each falling back to amqplib for anything else.
 *
 * The fast paths reach into amqplib's Connection and Channel, which are no API. One probe
 * (`fastPaths`, below) checks every internal they touch, once per connection, and says which of
 * them run; the rest of this file asks its answer and checks only state (a channel closing, a
 * message half read), never shapes. Invariant: nothing here touches an amqplib internal that the
 * probe does not check first. `WARREN_AMQP_FAST_PATHS=0` turns them all off.
 */
import * as path from "node:path";
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
  accept?: unknown;
  sendMessage?: unknown;
  allocate?(): unknown;
  emit(event: string, ...args: unknown[]): boolean;
  listenerCount(event: string): number;
  closeWithError(id: number, reason: string, code: number, error: Error): void;
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

// ---- the probe: which fast paths run --------------------------------------------------------

/**
 * `WARREN_AMQP_FAST_PATHS=0` (or `false`, `off`, `no`) turns every fast path off: the process
 * then runs on amqplib's public API alone, to rule this file out when hunting a bug or to run
 * on an amqplib the probe does not know. It is read as each connection is probed (when it is
 * made); nodes and workers inherit it from the process that starts them.
 */
export const FAST_PATHS_ENV = "WARREN_AMQP_FAST_PATHS";

/** The amqplib minor the internals below were read in and tested with (package.json pins ~2.3.1). */
const TESTED_AMQPLIB = "2.3";

/** Which fast paths run on a connection, and why those that do not are off. */
export interface FastPaths {
  /** A channel's frames go straight to the socket, corked per tick, not through amqplib's muxer. */
  directWrites: boolean;
  /** publishSmall writes a small message's three frames itself. */
  smallPublish: boolean;
  /** Whole deliveries are read off the socket's bytes here, not by amqplib's frame parser. */
  deliveryReader: boolean;
  /** The installed amqplib's version ("unknown" if its package.json could not be read). */
  amqplib: string;
  /** One line per reason a path is off (the off switch, or an internal that differs); empty when all run. */
  reasons: string[];
}

type Path = "directWrites" | "smallPublish" | "deliveryReader";
const PATHS: readonly Path[] = ["directWrites", "smallPublish", "deliveryReader"];

/** amqplib itself, as far as the probe needs it: its version, and a channel made on a stand-in connection. */
interface Amqplib { version: string; channel: ChannelInternals; confirmOnly: boolean }
/** What the stand-in connection's freshChannel hands out, to see that `ch` comes from it. */
const STAND_IN_CHANNEL = 7;

/**
 * Every amqplib internal a fast path touches, as amqplib 2.3.1 has it: what it is (the name a
 * reason gives), the paths that need it, and the check. Connection is lib/connection.js, reached
 * as the ChannelModel's `connection`; Channel is lib/channel_model.js's (over lib/channel.js).
 */
const INTERNALS: { what: string; for: readonly Path[]; holds(c: Connection, lib: Amqplib): boolean }[] = [
  // Wrapped, so each new channel's outgoing buffer writes to the socket.
  { what: "Connection#freshChannel()", for: ["directWrites"], holds: (c) => typeof c.freshChannel === "function" },
  // `channels[n] = { channel, buffer }`: the channel a delivery is emitted on; the PassThrough its
  // frames queue in for the muxer (write, readableLength: checked as writeDirectly meets each, as
  // none exists when the probe runs). publishSmall writes into it.
  { what: "Connection#channels", for: PATHS, holds: (c) => Array.isArray(c.channels) && !!c.channels[0] && "channel" in c.channels[0] && "buffer" in c.channels[0] },
  // The socket, a Duplex: corked per tick and written directly; read by the delivery reader.
  { what: "Connection#stream cork()/uncork()/write()", for: ["directWrites"], holds: (c) => isFunction(c.stream?.cork) && isFunction(c.stream?.uncork) && isFunction(c.stream?.write) },
  { what: "Connection#stream read()", for: ["deliveryReader"], holds: (c) => isFunction(c.stream?.read) },
  // Wrapped: amqplib's accept loop calls it on 'readable' for the next frame.
  { what: "Connection#recvFrame()", for: ["deliveryReader"], holds: (c) => typeof c.recvFrame === "function" },
  // The bytes read and not yet parsed, shared with amqplib's own reading; its limit on a frame.
  { what: "Connection#rest", for: ["deliveryReader"], holds: (c) => Buffer.isBuffer(c.rest) },
  { what: "Connection#maxFrameSize", for: ["deliveryReader"], holds: (c) => typeof c.maxFrameSize === "number" },
  // `mainAccept` while the connection is open; amqplib swaps in others while closing.
  { what: "Connection#accept (mainAccept)", for: ["deliveryReader"], holds: (c) => isFunction(c.accept) && c.accept?.name === "mainAccept" },
  // The negotiated largest frame a publish may send.
  { what: "Connection#frameMax", for: ["smallPublish"], holds: (c) => typeof c.frameMax === "number" && c.frameMax > 0 },
  // Heartbeats: set on every frame sent and every read, as amqplib does.
  { what: "Connection#sentSinceLastCheck", for: ["smallPublish"], holds: (c) => typeof c.sentSinceLastCheck === "boolean" },
  { what: "Connection#recvSinceLastCheck", for: ["deliveryReader"], holds: (c) => typeof c.recvSinceLastCheck === "boolean" },
  // A channel's number (set by allocate() from freshChannel) and its connection.
  { what: "Channel#ch and #connection", for: ["smallPublish"], holds: (_, lib) => lib.channel.ch === STAND_IN_CHANNEL && typeof lib.channel.connection === "object" },
  // `acceptDeliveryOrReturn` between messages: the reader takes a delivery only then.
  { what: "Channel#handleMessage (acceptDeliveryOrReturn)", for: ["deliveryReader"], holds: (_, lib) => lib.channel.handleMessage?.name === "acceptDeliveryOrReturn" },
  // Methods of the class, shadowed on the instance once the channel closes (toClosing,
  // invalidateSend): how the reader and publishSmall tell a closing channel.
  { what: "Channel#accept (own once closing)", for: ["deliveryReader"], holds: (_, lib) => isFunction(lib.channel.accept) && !Object.hasOwn(lib.channel, "accept") },
  { what: "Channel#sendMessage (own once closing)", for: ["smallPublish"], holds: (_, lib) => isFunction(lib.channel.sendMessage) && !Object.hasOwn(lib.channel, "sendMessage") },
  // A delivery is emitted as 'delivery', which the channel hands to its consumer; a consumer
  // that throws closes the channel, through closeWithError as in acceptMessageFrame.
  { what: "Channel 'delivery' event", for: ["deliveryReader"], holds: (_, lib) => lib.channel.listenerCount("delivery") === 1 },
  { what: "Channel#closeWithError()", for: ["deliveryReader"], holds: (_, lib) => isFunction(lib.channel.closeWithError) },
  // A confirm channel counts its publishes: publishSmall leaves those to amqplib.
  { what: "ConfirmChannel#waitForConfirms", for: ["smallPublish"], holds: (_, lib) => lib.confirmOnly },
];

const probed = new WeakMap<object, FastPaths>();

/** Which fast paths run on `conn` (probed once per connection, before anything is installed). */
export function fastPaths(conn: amqp.ChannelModel): FastPaths {
  return probe((conn as unknown as { connection?: Connection }).connection);
}

function probe(c: Connection | undefined): FastPaths {
  const known = c && probed.get(c);
  if (known) return known;
  const lib = amqplib();
  const result: FastPaths = { directWrites: true, smallPublish: true, deliveryReader: true, amqplib: lib instanceof Error ? "unknown" : lib.version, reasons: [] };
  const off = (reason: string, paths: readonly Path[] = PATHS) => {
    for (const p of paths) result[p] = false;
    result.reasons.push(reason);
  };
  if (/^(0|false|off|no)$/i.test(process.env[FAST_PATHS_ENV] ?? "")) off(`${FAST_PATHS_ENV}=${process.env[FAST_PATHS_ENV]}`);
  else if (lib instanceof Error) off(`amqplib's internals could not be loaded: ${lib.message}`);
  else if (!lib.version.startsWith(`${TESTED_AMQPLIB}.`)) off(`amqplib ${lib.version} is not the tested ${TESTED_AMQPLIB}.x`);
  else if (!c || typeof c !== "object") off("ChannelModel#connection is missing");
  else for (const internal of INTERNALS) if (!internal.holds(c, lib)) off(`${internal.what} differs (${internal.for.join(", ")} off)`, internal.for);
  if (c && typeof c === "object") probed.set(c, result);
  return result;
}

let loaded: Amqplib | Error | undefined;

/** amqplib's version and a channel of its class, loaded by path once (its package.json exports neither). */
function amqplib(): Amqplib | Error {
  if (loaded) return loaded;
  try {
    const root = path.dirname(require.resolve("amqplib"));
    const version = String(require(path.join(root, "package.json")).version);
    const model = require(path.join(root, "lib", "channel_model.js"));
    const channel = new model.Channel({ freshChannel: () => STAND_IN_CHANNEL }) as ChannelInternals;
    channel.allocate?.();
    const confirmOnly = "waitForConfirms" in model.ConfirmChannel.prototype && !("waitForConfirms" in model.Channel.prototype);
    loaded = { version, channel, confirmOnly };
  } catch (err) {
    loaded = err instanceof Error ? err : new Error(String(err));
  }
  return loaded;
}

function isFunction(x: unknown): boolean {
  return typeof x === "function";
}

/** How often each fast path ran in this process: the frames written directly, the messages published and deliveries read. */
const used = { directWrites: 0, smallPublishes: 0, deliveriesRead: 0 };

/** A copy of this process's fast path counts (all zero while the paths are off). */
export function fastPathUse(): Readonly<typeof used> {
  return { ...used };
}

/** Installs the fast paths the probe allows on a new connection; returns the probe's answer. */
export function tuneFrames(conn: amqp.ChannelModel): FastPaths {
  const paths = fastPaths(conn);
  const c = (conn as unknown as { connection: Connection }).connection;
  if (paths.directWrites) writeDirectly(c);
  if (paths.deliveryReader) readDeliveries(c);
  return paths;
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
  const stream = c.stream!;
  const fresh = c.freshChannel!;
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
      used.directWrites++;
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
  const recv = c.recvFrame!;
  const stream = c.stream!;
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
  used.deliveriesRead++;
  try {
    ch.emit("delivery", message);
  } catch (err) {
    // As amqplib: a consumer that throws closes its channel (or goes to 'handler-error').
    if (ch.listenerCount("handler-error") > 0) setImmediate(() => ch.emit("handler-error", err, "delivery"));
    else ch.closeWithError(BASIC_DELIVER, "Error while processing message", INTERNAL_ERROR, err instanceof Error ? err : new Error(String(err)));
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
 * Anything else (an empty body or one over a frame, a closed or confirm channel, a connection the
 * probe keeps this path off on) goes through amqplib's `publish`, which also raises its usual errors.
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
  const conn = c.connection!; // the probe says no fast path where amqplib has none
  const channel = c.ch!;
  // amqplib shadows an instance's sendMessage once its channel closes (its publish then throws)
  // and drops the channel's buffer once closed; a confirm channel counts its publishes.
  const plain = probe(conn).smallPublish && !Object.hasOwn(ch, "sendMessage") && !("waitForConfirms" in ch);
  const out = plain ? conn.channels![channel]?.buffer : undefined;
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
  if (!out || body.length === 0 || body.length > conn.frameMax! - 8 || tooLong) {
    ch.publish(exchange, routingKey, body, props);
    return;
  }
  const methodSize = 4 + 2 + 1 + exchangeLength + 1 + keyLength + 1;
  const headerSize = 2 + 2 + 8 + 2 + propsSize;
  const buf = Buffer.allocUnsafe(7 + methodSize + 1 + 7 + headerSize + 1 + 7 + body.length + 1);
  let at = frameStart(buf, 0, FRAME_METHOD, channel, methodSize);
  at = buf.writeUInt16BE(BASIC, at);
  at = buf.writeUInt16BE(PUBLISH, at);
  at = buf.writeUInt16BE(0, at); // reserved (ticket)
  at = shortstr(buf, at, exchange);
  at = shortstr(buf, at, routingKey);
  at = buf.writeUInt8(props.mandatory ? 1 : 0, at); // bits: mandatory, immediate
  at = buf.writeUInt8(FRAME_END, at);
  at = frameStart(buf, at, FRAME_HEADER, channel, headerSize);
  at = buf.writeUInt16BE(BASIC, at);
  at = buf.writeUInt16BE(0, at); // weight
  at = buf.writeUInt32BE(0, at); // body size, high 32 bits (a body fits in one frame)
  at = buf.writeUInt32BE(body.length, at);
  at = buf.writeUInt16BE(flags, at);
  for (const [, name] of SMALL_PROPERTIES) if (props[name] !== undefined) at = shortstr(buf, at, props[name]);
  at = buf.writeUInt8(FRAME_END, at);
  at = frameStart(buf, at, FRAME_BODY, channel, body.length);
  at += body.copy(buf, at);
  buf.writeUInt8(FRAME_END, at);
  conn.sentSinceLastCheck = true; // for amqplib's heartbeat check
  used.smallPublishes++;
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
