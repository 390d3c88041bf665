/**
 * transport: the one client of warren's requests, for drivers, workers, nodes and the CLI alike:
 * to the head (typed by wire/head.ts's HeadRequests), to one node (NodeRequests), and broadcast
 * state queries gathered from every process for a moment. A request goes out with a correlation
 * id and the caller's reply queue; the caller's consumer hands each Kind.reply to `settle`.
 * Requests are mandatory: one the broker cannot route (the head or node is gone) comes back as a
 * `return`, which the caller hands to `returned` to fail it at once instead of waiting forever.
 * One routed to a peer that never answers (hung) fails after `requestTimeoutMs()` of connected
 * time: the clock stops while the caller's connection is down, as the request then waits in the
 * link's outbox or is sent again once it is back.
 */
import * as v8 from "node:v8";
import type * as amqp from "amqplib";
import { NodeDiedError, WarrenError } from "../errors";
import { decodeError } from "../serialization";
import { Kind, RpcReply, type StateAnswer } from "../wire/kinds";
import type { HeadRequest, HeadRequests, NodeRequest, NodeRequests, PayloadOf, ReplyOf } from "../wire/head";
import { TRANSPORT_DEFAULTS, type Topology, secondsFromEnv } from "./index";
import { isOutbox, sendAgainSoon } from "./link";

/** How long a request waits for its answer: WARREN_REQUEST_TIMEOUT_S, else TRANSPORT_DEFAULTS.requestTimeoutMs. */
export function requestTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  return secondsFromEnv("WARREN_REQUEST_TIMEOUT_S", TRANSPORT_DEFAULTS.requestTimeoutMs, env);
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  /** Who was asked, for errors. */
  to: string;
  nodeId?: string;
  /** The request, to send again if the connection it went out on was lost. */
  exchange: string;
  key: string;
  kind: string;
  body: Buffer;
  /** Out when the connection was lost (connectionLost). */
  lost?: boolean;
  /** Fails it unanswered; running only while the connection is up. */
  timer?: NodeJS.Timeout;
}

export class RpcClient {
  private readonly pending = new Map<string, Pending>();
  private readonly gathering = new Map<string, (r: RpcReply) => void>();
  private seq = 0;
  private readonly timeoutMs = requestTimeoutMs();

  /**
   * `channel()` is the caller's channel now (it changes when a lost connection comes back).
   * While `settling()` says so (the caller's connection came back a moment ago, and the head or
   * node asked may not have yet), a request the broker returns is sent again a little later
   * instead of failed.
   */
  constructor(
    private readonly channel: () => amqp.Channel,
    private readonly topo: Topology,
    private readonly replyTo: string,
    private readonly settling: () => boolean = () => false,
  ) {}

  private get ch(): amqp.Channel {
    return this.channel();
  }

  /** A request to the cluster's head. */
  head<K extends HeadRequest>(kind: K, payload: PayloadOf<HeadRequests, K>): Promise<ReplyOf<HeadRequests, K>> {
    return this.request("", this.topo.head, kind, payload, `the head of cluster "${this.topo.cluster}"`) as Promise<ReplyOf<HeadRequests, K>>;
  }

  /** A request to node `nodeId`. */
  node<K extends NodeRequest>(nodeId: string, kind: K, payload: PayloadOf<NodeRequests, K>): Promise<ReplyOf<NodeRequests, K>> {
    return this.request(this.topo.control, `node.${nodeId}`, kind, payload, `node ${nodeId} of cluster "${this.topo.cluster}"`, nodeId) as Promise<ReplyOf<NodeRequests, K>>;
  }

  /** Tells the head something; no answer. */
  notify<K extends HeadRequest>(kind: K, payload: PayloadOf<HeadRequests, K>): void {
    this.ch.publish("", this.topo.head, v8.serialize(payload), { type: kind });
  }

  /**
   * Asks every process and node (a broadcast) and gathers their rows. It waits for the head and
   * for every process vouched for (the alive nodes and running drivers, each node's workers),
   * at most `windowMs`; those that did not answer by then are named in `unanswered`.
   */
  async gather<T>(what: "tasks" | "objects", windowMs = TRANSPORT_DEFAULTS.gatherMs): Promise<{ rows: T[]; unanswered: string[] }> {
    const correlationId = String(++this.seq);
    const rows: T[] = [];
    const answered = new Set<string>();
    const expected = new Map([["head", `the head of cluster "${this.topo.cluster}"`]]);
    let complete!: () => void;
    const all = new Promise<void>((r) => (complete = r));
    this.gathering.set(correlationId, (r) => {
      if (!r.ok) return;
      const a = r.value as StateAnswer;
      rows.push(...(a.rows as T[]));
      answered.add(a.from);
      if (a.head) answered.add("head");
      for (const [id, who] of Object.entries(a.vouch ?? {})) expected.set(id, who);
      if ([...expected.keys()].every((id) => answered.has(id))) complete();
    });
    this.ch.publish(this.topo.control, "all.state", v8.serialize({ what }), { type: Kind.stateQuery, replyTo: this.replyTo, correlationId });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise((r) => (timer = setTimeout(r, windowMs)))]);
    clearTimeout(timer);
    this.gathering.delete(correlationId);
    return { rows, unanswered: [...expected].filter(([id]) => !answered.has(id)).map(([, who]) => who) };
  }

  private request(exchange: string, key: string, kind: string, payload: unknown, to: string, nodeId?: string): Promise<unknown> {
    const correlationId = String(++this.seq);
    const body = v8.serialize(payload);
    const answer = new Promise((resolve, reject) => {
      const p: Pending = { resolve, reject, to, nodeId, exchange, key, kind, body };
      this.pending.set(correlationId, p);
      this.publish(correlationId, p);
      if (!isOutbox(this.ch)) this.startClock(correlationId, p);
    });
    // A caller that does not wait for the answer (a `warren.kill(h)` not awaited before
    // shutdown()) must not end the process with an unhandled rejection; one that waits still gets it.
    answer.catch(() => undefined);
    return answer;
  }

  private startClock(id: string, p: Pending): void {
    p.timer = setTimeout(() => {
      this.take(id);
      const what = p.nodeId ? "node" : "head";
      p.reject(new WarrenError(
        `${p.to} did not answer ${what} request ${p.kind} within ${this.timeoutMs / 1000} s; is it running? \`warren status --cluster ${this.topo.cluster}\``,
      ));
    }, this.timeoutMs);
  }

  /** The request `id` is settled: no longer pending, its clock stopped. */
  private take(id: string): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    clearTimeout(p.timer);
    return p;
  }

  private publish(correlationId: string, p: Pending): void {
    this.ch.publish(p.exchange, p.key, p.body, { type: p.kind, replyTo: this.replyTo, correlationId, mandatory: true });
  }

  /**
   * The connection went: the requests out now may never be answered (those made from now on wait
   * in its outbox). No request times out while it is down: the outage has a limit of its own.
   */
  connectionLost(): void {
    for (const p of this.pending.values()) {
      p.lost = true;
      clearTimeout(p.timer);
      p.timer = undefined;
    }
  }

  /**
   * The connection is back: sends again the requests that were out when it went (a second answer
   * is ignored), and starts the clock of every request again, those from the outbox included.
   */
  resendLost(): void {
    for (const [id, p] of this.pending) {
      if (p.lost) this.publish(id, p);
      p.lost = false;
      if (!p.timer) this.startClock(id, p);
    }
  }

  /** A Kind.reply arrived: settle the request (or feed the gathering) it answers. */
  settle(msg: amqp.Message): void {
    const id = msg.properties.correlationId;
    const gathering = this.gathering.get(id);
    if (gathering) return gathering(v8.deserialize(msg.content));
    const p = this.take(id);
    if (!p) return;
    const r: RpcReply = v8.deserialize(msg.content);
    if (r.ok) p.resolve(r.value);
    else p.reject(decodeError(r.error));
  }

  /** The broker returned an unroutable message: if it was a request of ours, its target is gone. */
  returned(msg: amqp.Message): boolean {
    const id = msg.properties.correlationId;
    const p = this.pending.get(id);
    if (!p) return false;
    if (this.settling()) {
      sendAgainSoon(() => this.pending.get(id) === p && this.publish(id, p));
      return true;
    }
    this.take(id);
    p.reject(new NodeDiedError(`${p.to} is unreachable: it has stopped or died`));
    return true;
  }

  /** Node `nodeId` died: requests to it will never be answered. */
  nodeDied(nodeId: string): void {
    for (const [id, p] of this.pending) {
      if (p.nodeId !== nodeId) continue;
      this.take(id);
      p.reject(new NodeDiedError(`node ${nodeId} died`));
    }
  }

  /** Fails every request still waiting. */
  failAll(error: Error): void {
    for (const [id, p] of this.pending) {
      this.take(id);
      p.reject(error);
    }
  }
}

/** Sent through the sync request thread (core/sync-rpc-thread.ts) to close its connection. */
export const CLOSE_SYNC_RPC = "close";
