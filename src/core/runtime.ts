/**
 * core: the per-process runtime (Ray's core worker). Every driver and every worker has one: it
 * holds the process's broker connection and inbox, and composes the parts that do the work:
 * - submitter.ts      sends tasks and actor calls,
 * - task-manager.ts   keeps their records, retries and lineage until their results come,
 * - objects.ts        owns, stores, lends and borrows objects,
 * - future-resolver.ts  get and wait,
 * - transport/rpc.ts and rpc.ts  requests to the head and to nodes.
 * The inbox (one long-lived exclusive queue per process) takes results, object requests,
 * replies and releases, replies to requests, this job's worker output, and the broadcasts every process hears
 * (actor and node deaths, state queries); `onInbox` hands each to its part.
 *
 * The connection is a BrokerLink (transport/link.ts): when the broker goes away the runtime waits
 * for it (publishes held in the link's outbox), and when it is back declares its inbox and the
 * shapes it used again, then sends again every task, request and object request that was out
 * when the connection went (results of tasks that finish meanwhile may have gone with it;
 * duplicates are dropped by task id). Listeners (an actor host, a lease) hear it through `onLink`.
 */
import * as v8 from "node:v8";
import type * as amqp from "amqplib";
import { ActorDiedError, TaskCancelledError, WarrenError } from "../errors";
import { EncodedError, encodeError } from "../serialization";
import { Topology, connectionName, consumeQueue, resubscribe } from "../transport";
import { BrokerLink, sendAgainSoon } from "../transport/link";
import { RpcClient } from "../transport/rpc";
import type { ObjectRef } from "../objects/ref";
import { Kind, RpcReply, type StateAnswer } from "../wire/kinds";
import { decodeResults } from "../wire/messages";
import type { RuntimeConfig } from "./context";
import { setRuntime } from "./current";
import { CORE_DEFAULTS } from "./defaults";
import { FutureResolver } from "./future-resolver";
import { Objects } from "./objects";
import { SyncRpc } from "./rpc";
import { Submitter } from "./submitter";
import { TaskManager } from "./task-manager";
import { TaskEvents } from "./task-events";
import { onInfeasible } from "./infeasible";
import type { Route, TaskTemplate } from "./template";
import { type LogEntry, printLog } from "./driver-output";

export class Runtime {
  readonly topo: Topology;
  readonly inbox: string;
  readonly tasks: TaskManager;
  /** This process's task events, sent to the head in batches. */
  readonly events: TaskEvents;
  readonly objects: Objects;
  readonly submitter: Submitter;
  readonly resolver: FutureResolver;
  /** Requests to the head and to nodes, answered to this process's inbox. */
  readonly rpc: RpcClient;
  /** The few requests to the head that must be answered before the call returns. */
  readonly rpcSync: SyncRpc;
  /** Actors this process created whose mailbox is being declared: calls to them wait for it; removed once declared. */
  readonly mailboxes = new Map<string, Promise<void>>();
  private closed = false;
  /** Set when the cluster this driver started is gone: every later call fails with it. */
  private lost?: Error;
  /** Set by a worker: the tasks it runs, for state queries (a leased task's node does not see it). */
  runningRows?: () => Record<string, unknown>[];
  /** Set by a worker in durable mode: an owner back from an outage asks for these tasks' results again. */
  onResultsWanted?: (tasks: string[]) => void;
  /** Set by an actor's worker: what exitActor() does. */
  onExitActor?: (actorId: string) => void;

  /** The broker connection, kept across outages. */
  link!: BrokerLink;
  /** This process's channel; the link's outbox while the connection is down. */
  ch!: amqp.Channel;
  /** In durable mode, the confirm channel task and call messages go out on (the outbox while down). */
  confirmCh?: amqp.ConfirmChannel;
  /** What else holds channels in this process (an actor host, the lease channel), told of the link's changes. */
  private readonly listeners: LinkListener[] = [];

  private constructor(readonly config: RuntimeConfig) {
    this.topo = new Topology(config.cluster, config.durable ?? false);
    this.inbox = this.topo.inbox(config.ownerId);
    this.rpc = new RpcClient(() => this.ch, this.topo, this.inbox, () => this.link.settling());
    this.rpcSync = new SyncRpc(config.address, config.cluster, () => connectionName(config.cluster, "sync-rpc", config.ownerId, config.nodeId), () => this.ensureOpen());
    this.events = new TaskEvents(this);
    this.tasks = new TaskManager(this);
    this.objects = new Objects(this);
    this.submitter = new Submitter(this);
    this.resolver = new FutureResolver(this);
  }

  static async start(config: RuntimeConfig): Promise<Runtime> {
    const rt = new Runtime(config);
    rt.link = await BrokerLink.open(config.address, connectionName(config.cluster, config.role, config.ownerId, config.nodeId), {
      restore: (link, again) => rt.restore(link, again),
      down: () => rt.down(),
      lost: (err) => rt.channelLost(err),
    });
    setRuntime(rt);
    return rt;
  }

  get conn(): amqp.ChannelModel {
    return this.link.conn;
  }

  /** Durable mode, learnt from the head by a driver that joins a cluster, before it declares any shared queue. */
  async useDurable(): Promise<void> {
    this.topo.durable = true;
    await this.whenUp(() => this.openConfirmChannel(this.link));
  }

  private async openConfirmChannel(link: BrokerLink): Promise<void> {
    const ch = await link.conn.createConfirmChannel();
    link.watch(ch, (err) => this.channelLost(err));
    ch.on("return", (msg: amqp.Message) => this.onReturned(msg));
    this.confirmCh = ch;
  }

  /** Hears of the connection's changes from now on (see LinkListener). */
  onLink(l: LinkListener): void {
    this.listeners.push(l);
  }

  /** Runs a channel operation on this process's channel, waiting out an outage (it runs once the broker is back). */
  async whenUp<T>(op: (ch: amqp.Channel) => Promise<T>): Promise<T> {
    for (;;) {
      await this.link.whenUp();
      try {
        return await op(this.ch);
      } catch (err) {
        if (this.link.up) throw err;
      }
    }
  }

  /** The tasks that were out when the connection went, sent again once it is back, and those whose results alone are asked for again. */
  private lostTasks: { resend: string[]; askResults: string[] } = { resend: [], askResults: [] };

  private down(): void {
    this.ch = this.link.outbox.channel;
    if (this.confirmCh) this.confirmCh = this.link.outbox.channel as amqp.ConfirmChannel;
    this.lostTasks = this.tasks.lostWithConnection(this.topo.durable);
    this.rpc.connectionLost();
    this.objects.connectionLost();
    for (const l of this.listeners) l.down();
  }

  /** On every connection: the channel, the exchanges, the inbox, the shapes; then what was lost, sent again. */
  private async restore(link: BrokerLink, again: boolean): Promise<amqp.Channel> {
    const conn = link.conn;
    const ch = await conn.createChannel();
    link.watch(ch, (err) => this.channelLost(err));
    ch.on("return", (msg: amqp.Message) => this.onReturned(msg));
    await this.topo.declare(ch);
    this.ch = ch;
    if (this.topo.durable) await this.openConfirmChannel(link);
    await this.subscribeInbox();
    if (!again) return ch;
    await this.submitter.redeclareShapes();
    for (const l of this.listeners) await l.restore(conn);
    const { resend, askResults } = this.lostTasks;
    this.tasks.resend(resend);
    // Workers keep their latest results in durable mode (worker/recent-results.ts): those sent to
    // the inbox that died are sent again, now that it is back. Duplicates are dropped by task id.
    if (askResults.length) ch.publish(this.topo.control, "all.results-wanted", v8.serialize({ tasks: askResults }), { type: Kind.resultsWanted });
    this.lostTasks = { resend: [], askResults: [] };
    this.rpc.resendLost();
    this.objects.resendLost();
    return ch;
  }

  /** Declares this process's inbox, binds what it hears, and consumes it (again, if the broker cancelled its consumer). */
  private async subscribeInbox(): Promise<void> {
    const { ch, inbox, topo, config } = this;
    await ch.assertQueue(inbox, { exclusive: true, autoDelete: true });
    if (config.role === "driver" && config.logToDriver) await ch.bindQueue(inbox, topo.logs, config.jobId);
    await ch.bindQueue(inbox, topo.control, "all.actor-dead");
    await ch.bindQueue(inbox, topo.control, "all.state");
    if (config.role === "worker" && topo.durable) await ch.bindQueue(inbox, topo.control, "all.results-wanted");
    await ch.bindQueue(inbox, topo.control, "all.node-dead");
    await ch.bindQueue(inbox, topo.control, "all.infeasible");
    const again = () => this.closed || resubscribe(`inbox ${inbox}`, () => this.subscribeInbox(), (reason) => this.channelLost(reason));
    await consumeQueue(ch, inbox, (msg) => this.onInbox(msg), again, { noAck: true });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // ---- what the API calls ------------------------------------------------------------------

  submit(t: TaskTemplate, args: unknown[], route?: Route): ObjectRef[] {
    this.ensureOpen();
    return this.submitter.submit(t, args, route);
  }

  put(value: unknown): ObjectRef {
    this.ensureOpen();
    return this.objects.put(value, this.submitter.ids.next());
  }

  get(refs: ObjectRef[], timeoutSec?: number, one?: false): Promise<unknown[]>;
  get(refs: [ObjectRef], timeoutSec: number | undefined, one: true): Promise<unknown>;
  get(refs: ObjectRef[], timeoutSec?: number, one = false): Promise<unknown> {
    this.ensureOpen();
    return this.resolver.get(refs, timeoutSec, one);
  }

  wait(refs: ObjectRef[], numReturns: number, timeoutSec?: number): Promise<[ObjectRef[], ObjectRef[]]> {
    this.ensureOpen();
    return this.resolver.wait(refs, numReturns, timeoutSec);
  }

  /** Cancels a task: it fails with `why` (TaskCancelledError by default), and the nodes drop or stop it. */
  cancel(taskId: string, force: boolean, recursive: boolean, why?: Error): void {
    this.ensureOpen();
    const rec = this.tasks.get(taskId);
    if (!rec) return;
    if (rec.sent && rec.pins) this.objects.keepForGood(rec.pins);
    this.tasks.fail(taskId, encodeError(why ?? new TaskCancelledError(`task ${rec.name} (${taskId}) was cancelled`)));
    this.ch.publish(this.topo.control, "all.cancel", v8.serialize({ task: taskId, force, recursive }), { type: Kind.cancel });
  }

  /**
   * Cancels the unfinished tasks that the task `parentId` submitted (a recursive cancel of it):
   * the other tasks this process runs or ran keep theirs. Each child's own children are its
   * worker's to cancel, as the cancel is recursive.
   */
  cancelChildren(parentId: string, force: boolean): void {
    for (const taskId of this.tasks.childrenOf(parentId)) this.cancel(taskId, force, true);
  }

  publishLog(job: string, entry: LogEntry): void {
    this.ch.publish(this.topo.logs, job, v8.serialize(entry), { type: Kind.log });
  }

  // ---- the inbox -------------------------------------------------------------------------

  private onInbox(msg: amqp.ConsumeMessage): void {
    switch (msg.properties.type) {
      case Kind.result: {
        for (const r of decodeResults(msg.content)) this.tasks.onResult(r);
        return;
      }
      case Kind.log: return printLog(v8.deserialize(msg.content));
      case Kind.objectRequest: return this.objects.onRequest(v8.deserialize(msg.content));
      case Kind.actorDead: return this.tasks.onActorDead(v8.deserialize(msg.content));
      case Kind.tasksLost: return this.tasks.onTasksLost(v8.deserialize(msg.content));
      case Kind.nodeDead: return this.rpc.nodeDied(v8.deserialize(msg.content).nodeId);
      case Kind.infeasible: return onInfeasible(this, v8.deserialize(msg.content));
      case Kind.stateQuery: return this.answerState(msg);
      case Kind.resultsWanted: return this.onResultsWanted?.(v8.deserialize(msg.content).tasks);
      case Kind.reply: return this.rpc.settle(msg);
      case Kind.objectReply: return this.objects.onReply(v8.deserialize(msg.content));
      case Kind.objectRelease: return this.objects.onRelease(v8.deserialize(msg.content));
      case Kind.objectHeld: return this.objects.lent(v8.deserialize(msg.content));
    }
  }

  /** A message the broker could not route: its destination queue is gone. */
  private onReturned(msg: amqp.Message): void {
    if (msg.properties.type === Kind.objectRequest) return this.objects.onRequestReturned(msg);
    if (this.rpc.returned(msg)) return;
    const actorId = this.topo.mailboxActor(msg.fields.routingKey);
    if (actorId !== undefined) {
      // Back from an outage a moment ago: the actor may not have declared its mailbox again yet.
      if (this.link.settling()) return sendAgainSoon(() => this.tasks.resend([msg.properties.messageId]));
      void this.failDeadActorCall(actorId, msg.properties.messageId, msg.properties.type);
    }
  }

  /** A call to an actor whose mailbox is gone (a handle older than this process): ask the head why. */
  private async failDeadActorCall(actorId: string, taskId: string, name: string): Promise<void> {
    const info = await this.rpc.head("actor.info", { id: actorId }).catch(() => null);
    const error: EncodedError = info?.cause ?? encodeError(new ActorDiedError(`the actor ${actorId} is dead, so ${name} cannot run`));
    this.tasks.fail(taskId, error);
  }

  /** Answers a state query (api/state.ts): this process's tasks, or the objects it owns. */
  private answerState(msg: amqp.ConsumeMessage): void {
    const { what } = v8.deserialize(msg.content) as { what: "tasks" | "objects" };
    const rows = what === "tasks" ? [...(this.runningRows?.() ?? []), ...this.tasks.rows()] : this.objects.rows();
    const reply: RpcReply<StateAnswer> = { ok: true, value: { from: this.config.ownerId, rows: rows.slice(-CORE_DEFAULTS.stateRows) } };
    this.ch.publish("", msg.properties.replyTo, v8.serialize(reply), { type: Kind.reply, correlationId: msg.properties.correlationId });
  }

  // ---- lifecycle -------------------------------------------------------------------------

  private ensureOpen(): void {
    if (this.closed) throw new WarrenError("warren has been shut down: call `await warren.init()` again");
    if (this.lost) throw this.lost;
  }

  /**
   * One of this process's broker channels closed under it while its connection stayed (a 406
   * from a stray ack), or the broker stayed away past the outage limit. A worker exits (its node
   * retries what it ran, as for any worker that died); a driver fails what waits instead of
   * waiting forever.
   */
  channelLost(reason: Error): void {
    if (this.closed) return;
    if (this.config.role === "worker") {
      console.error(`warren worker ${process.pid}: ${reason.message}; exiting`);
      process.exit(1);
    }
    const error = reason instanceof WarrenError ? reason : new WarrenError(`warren lost its broker channel (${reason.message}); call \`await warren.shutdown()\` and init() again`, { cause: reason });
    this.clusterLost(error);
  }

  /** The node running this driver's tasks is gone for good: fail everything waiting on it, now and later. */
  clusterLost(error: Error): void {
    this.lost = error;
    this.tasks.failAll(encodeError(error));
    this.rpc.failAll(error);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    setRuntime(this, true);
    this.rpcSync.close();
    this.rpc.failAll(new WarrenError("warren was shut down before this request was answered"));
    await this.objects.close();
    this.events.close();
    // Closing the channel first waits for the broker to process what was sent on it (close-ok).
    await this.ch.close().catch(() => undefined);
    await this.link.close();
  }
}

/** Something in the process that holds channels of its own, told when the connection goes and comes back. */
export interface LinkListener {
  /** The connection is gone: its channels with it. */
  down(): void;
  /** A new connection, restored for the runtime: make channels anew and consume again. */
  restore(conn: amqp.ChannelModel): Promise<void>;
}

