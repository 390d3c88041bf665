/**
 * The two messages every task costs: the task itself, and its result. Each has a binary layout
 * of its own around v8-serialized parts, because v8's serializer costs microseconds per call
 * before it writes a byte (a DefaultSerializer object, a JavaScript callback for each Buffer
 * inside), and a small task paid for four such calls on top of its own values.
 *
 * Task message: [u8 TASK_FORMAT] [u16 n] [head: n bytes] [u8 n] [task id: n latin1 bytes]
 *               [u32 n] [arguments: n bytes] [refs: the rest]
 * - head: v8 bytes of what all calls of one function (or actor method) from one job share
 *   (TaskHead). The submitter encodes it once per template and job; a receiver decodes each
 *   distinct head once and keeps it, so a call costs no more than its own arguments.
 * - arguments: v8 bytes of the argument array; none when n is 0.
 * - refs: when arguments are ObjectRefs, v8 bytes of { refArgs, resolved }; else empty.
 *
 * Results (one message carries every result a process has for one owner at the end of a tick):
 *   [u8 RESULTS_FORMAT] [u32 count] and per result: [u8 n] [task id], optionally
 *   [u8 HELD] [u8 n] [borrower id] [u32 count] [each object id: u8 n, its latin1 bytes], then either
 *   [u8 ERROR] [u32 n] [v8 bytes of the EncodedError], or [u8 RETURNS] [u32 count] and per value:
 *   [u8 INLINE] [u32 n] [its encoded bytes] | [u8 STORED] [u8 n] [node id] [f64 size] | [u8 ERROR] [u32 n] [v8 error]
 */
import * as v8 from "node:v8";
import { BoundedMap } from "../bounded";
import { WarrenError } from "../errors";
import { EncodedError, encode, hasMarkers, joined } from "../serialization";
import type { Descriptor, HandleInfo } from "./descriptors";

/** Where an object's value is: inline bytes, a node's LMDB store, or the error that replaced it. */
export type StoredObject =
  | { inline: Buffer }
  | { node: string; size: number }
  | { error: EncodedError };

/** What every call of one function or actor method from one job has in common. */
export interface TaskHead {
  job: string;
  namespace: string;
  fn: Descriptor;
  name: string;
  numReturns: number;
  /** Retries after its worker or node dies (-1: forever); the attempt so far is the `attempt` header. */
  maxRetries: number;
  retryExceptions: boolean;
  /** Set for actor creation and actor calls. */
  actor?: { id: string; method?: string; create?: ActorCreation };
}

/** What an actor's creation task carries beyond its constructor arguments. */
export interface ActorCreation {
  handle: HandleInfo;
  maxConcurrency: number;
  maxTaskRetries: number;
  /** A detached actor's calls run in no job: what it submits lives on when its caller's job ends. */
  detached: boolean;
  /** Group name -> how many of its calls may run at once; other methods share maxConcurrency. */
  concurrencyGroups: Record<string, number>;
  /** `process: "shared"`: the actor lives in a host process of its node with other shared actors. */
  shared: boolean;
}

/** A task as a worker reads it. The head's fields are shared between calls: never change them. */
export interface TaskSpec extends TaskHead {
  id: string;
  /** As sent: ObjectRefs and handles inside are markers until revived (`markers`). */
  args: unknown[];
  /** Indexes of top-level ObjectRef arguments, resolved to values before the call. */
  refArgs: number[];
  /** Values of top-level refs the submitter already had (saves the worker a round trip). */
  resolved: Record<number, StoredObject>;
  /** The arguments hold markers of refs or handles, to revive once the function's module is loaded. */
  markers: boolean;
}

/** Refs that process `by` was lent and may still hold (in a result), or has dropped (a release). */
export interface Held {
  by: string;
  ids: string[];
}

/** What a task's owner hears back: its return values, or why it failed, and the refs it was given that its worker still holds. */
export interface ResultMessage {
  task: string;
  returns?: StoredObject[];
  error?: EncodedError;
  held?: Held;
}

const TASK_FORMAT = 1;
const RESULTS_FORMAT = 2;
const RETURNS = 0;
const INLINE = 1;
const STORED = 2;
const ERROR = 3;
const HELD = 4;
const NO_ARGS = Buffer.alloc(0);

/** The v8 bytes of a task's head, kept on its template for the calls that follow. */
export function encodeHead(head: TaskHead): Buffer {
  const bytes = v8.serialize(head);
  if (bytes.length > 0xffff) throw new WarrenError(`the description of ${head.name} is ${bytes.length} bytes; at most 65535 fit in a task message`);
  return bytes;
}

/**
 * The v8 bytes of a call's arguments, naming the one that cannot cross. They are copied as
 * they are now, as in Ray.
 */
export function encodeArgs(args: unknown[], fnName: string): Buffer {
  if (args.length === 0) return NO_ARGS;
  try {
    return v8.serialize(args);
  } catch {
    args.forEach((arg, i) => encode(arg, `argument ${i} of ${fnName}`));
    return joined(encode(args, `the arguments of ${fnName}`));
  }
}

export function encodeTask(head: Buffer, id: string, args: Buffer, refs?: { refArgs: number[]; resolved: Record<number, StoredObject> }): Buffer {
  const refBytes = refs && refs.refArgs.length > 0 ? v8.serialize(refs) : NO_ARGS;
  const out = Buffer.allocUnsafe(1 + 2 + head.length + 1 + id.length + 4 + args.length + refBytes.length);
  let at = out.writeUInt8(TASK_FORMAT, 0);
  at = out.writeUInt16LE(head.length, at);
  at += head.copy(out, at);
  at = out.writeUInt8(id.length, at);
  at += out.write(id, at, "latin1");
  at = out.writeUInt32LE(args.length, at);
  at += args.copy(out, at);
  refBytes.copy(out, at);
  return out;
}

/** Heads seen by this process, by their bytes: most processes see a handful, used over and over. */
const heads = new BoundedMap<string, TaskHead>(1000);

/** The head of a task message (cheap: each distinct head is decoded once per process). */
export function readHead(body: Buffer): TaskHead {
  if (body[0] !== TASK_FORMAT) {
    throw new WarrenError(`a task message of an unknown format (${body[0]}): every process of a cluster must run the same warren version`);
  }
  const end = 3 + body.readUInt16LE(1);
  const key = body.toString("latin1", 3, end);
  let head = heads.get(key);
  if (!head) heads.set(key, (head = v8.deserialize(body.subarray(3, end)) as TaskHead));
  return head;
}

export function readTask(body: Buffer): TaskSpec {
  const h = readHead(body);
  let at = 3 + body.readUInt16LE(1);
  const idLength = body[at++];
  const id = body.toString("latin1", at, (at += idLength));
  const argsLength = body.readUInt32LE(at);
  at += 4;
  const argBytes = body.subarray(at, (at += argsLength));
  const refs = at < body.length ? (v8.deserialize(body.subarray(at)) as { refArgs: number[]; resolved: Record<number, StoredObject> }) : undefined;
  return {
    job: h.job, namespace: h.namespace, fn: h.fn, name: h.name, numReturns: h.numReturns, maxRetries: h.maxRetries,
    retryExceptions: h.retryExceptions, actor: h.actor, id,
    args: argsLength === 0 ? [] : (v8.deserialize(argBytes) as unknown[]),
    refArgs: refs?.refArgs ?? [],
    resolved: refs?.resolved ?? {},
    markers: argsLength > 0 && hasMarkers(argBytes),
  };
}

export function encodeResults(results: ResultMessage[]): Buffer {
  const parts: Buffer[] = [];
  let size = 5;
  const errorBytes = (e: EncodedError) => {
    const b = v8.serialize(e);
    parts.push(b);
    return 4 + b.length;
  };
  // First the sizes (errors are serialized here, and kept), then one pass writing.
  for (const r of results) {
    size += 2 + r.task.length; // its id's length, the id, and ERROR or RETURNS
    if (r.held) size += 2 + r.held.by.length + 4 + r.held.ids.reduce((n, id) => n + 1 + id.length, 0);
    if (r.error) size += errorBytes(r.error);
    else {
      size += 4;
      for (const v of r.returns!) size += 1 + ("inline" in v ? 4 + v.inline.length : "node" in v ? 9 + v.node.length : errorBytes(v.error));
    }
  }
  const out = Buffer.allocUnsafe(size);
  let part = 0;
  let at = out.writeUInt8(RESULTS_FORMAT, 0);
  const bytes = (b: Buffer) => {
    at = out.writeUInt32LE(b.length, at);
    at += b.copy(out, at);
  };
  at = out.writeUInt32LE(results.length, at);
  for (const r of results) {
    at = out.writeUInt8(r.task.length, at);
    at += out.write(r.task, at, "latin1");
    if (r.held) {
      at = out.writeUInt8(HELD, at);
      at = out.writeUInt8(r.held.by.length, at);
      at += out.write(r.held.by, at, "latin1");
      at = out.writeUInt32LE(r.held.ids.length, at);
      for (const id of r.held.ids) {
        at = out.writeUInt8(id.length, at);
        at += out.write(id, at, "latin1");
      }
    }
    if (r.error) {
      at = out.writeUInt8(ERROR, at);
      bytes(parts[part++]);
      continue;
    }
    at = out.writeUInt8(RETURNS, at);
    at = out.writeUInt32LE(r.returns!.length, at);
    for (const v of r.returns!) {
      if ("inline" in v) {
        at = out.writeUInt8(INLINE, at);
        bytes(v.inline);
      } else if ("node" in v) {
        at = out.writeUInt8(STORED, at);
        at = out.writeUInt8(v.node.length, at);
        at += out.write(v.node, at, "latin1");
        at = out.writeDoubleLE(v.size, at);
      } else {
        at = out.writeUInt8(ERROR, at);
        bytes(parts[part++]);
      }
    }
  }
  return out;
}

export function decodeResults(buf: Buffer): ResultMessage[] {
  if (buf[0] !== RESULTS_FORMAT) {
    throw new WarrenError(`a result message of an unknown format (${buf[0]}): every process of a cluster must run the same warren version`);
  }
  let at = 1;
  const bytes = () => {
    const n = buf.readUInt32LE(at);
    at += 4;
    return buf.subarray(at, (at += n));
  };
  const latin1 = () => {
    const n = buf[at++];
    return buf.toString("latin1", at, (at += n));
  };
  const results: ResultMessage[] = new Array(buf.readUInt32LE(at));
  at += 4;
  for (let i = 0; i < results.length; i++) {
    const task = latin1();
    let held: Held | undefined;
    if (buf[at] === HELD) {
      at++;
      held = { by: latin1(), ids: new Array(buf.readUInt32LE(at)) };
      at += 4;
      for (let j = 0; j < held.ids.length; j++) held.ids[j] = latin1();
    }
    if (buf[at++] === ERROR) results[i] = { task, error: v8.deserialize(bytes()) };
    else results[i] = { task, returns: readReturns() };
    if (held) results[i].held = held;
  }
  return results;

  function readReturns(): StoredObject[] {
    const returns: StoredObject[] = new Array(buf.readUInt32LE(at));
    at += 4;
    for (let j = 0; j < returns.length; j++) {
      const kind = buf[at++];
      if (kind === INLINE) returns[j] = { inline: Buffer.from(bytes()) }; // a copy: the message's buffer is the socket's
      else if (kind === STORED) {
        returns[j] = { node: latin1(), size: buf.readDoubleLE(at) };
        at += 8;
      } else returns[j] = { error: v8.deserialize(bytes()) };
    }
    return returns;
  }
}
