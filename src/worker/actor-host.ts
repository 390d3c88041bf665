/**
 * An actor in a worker: it consumes the actor's mailbox and runs calls in arrival order,
 * up to `maxConcurrency` at once (1 for actors with only sync methods, so calls never interleave);
 * methods in a concurrency group count against that group's limit instead.
 * A call delivered again after a crash was in flight on the dead incarnation: it runs again only
 * if maxTaskRetries allows, otherwise its caller gets ActorDiedError.
 *
 * Calls run exactly once across broker outages: the actor process lives through them, its
 * callers send again the calls they have no answer for, and the host drops a call it has queued
 * or running and answers again one it has run (the latest actorResultsKept per caller).
 *
 * A worker hosts one actor with a process of its own, or (a host process) many shared actors
 * (`process: "shared"`), each with its own mailbox, calls, state and death: their mailboxes
 * share a few channels (mailbox-channel.ts) and the process's one connection.
 */
import type * as amqp from "amqplib";
import { ActorDiedError, WarrenError } from "../errors";
import { encodeError } from "../serialization";
import { BoundedMap } from "../bounded";
import { consumeQueue, resubscribe } from "../transport";
import type { Runtime } from "../core/runtime";
import { ownerOf } from "../wire/ids";
import type { TaskContext } from "../core/context";
import { ActorCreation, ResultMessage, TaskSpec, readTask } from "../wire/messages";
import type { WorkerToNode } from "../wire/ipc";
import { MaybePromise, andThen, execute, publishResult, showTitle } from "./execute";
import { WORKER_DEFAULTS } from "./defaults";
import type { MailboxChannel } from "./mailbox-channel";

const { actorResultsKept } = WORKER_DEFAULTS;

interface Call { msg: amqp.ConsumeMessage; epoch: number }

export class ActorHost {
  /** Calls delivered and not yet started, read on arrival (the method decides the concurrency group). */
  private readonly queue: (Call & { spec: TaskSpec })[] = [];
  /** Calls queued or running (by task id), and per caller the results of the latest run. */
  private readonly inProgress = new Set<string>();
  private readonly answered = new BoundedMap<string, BoundedMap<string, ResultMessage>>(actorResultsKept);
  /** The connection has been lost once at least: a call delivered again is a resend, not a crash's. */
  private reconnected = false;
  private readonly running = new Set<Call>();
  /** Calls running per concurrency group ("" is the default group, limited by maxConcurrency). */
  private readonly busy = new Map<string, number>();
  private exiting = false;
  /** A shared actor stopped in its host (killed, or exited): it holds no call, and answers none of those it ran. */
  private stopped = false;
  private serving = false;
  private consumerTag?: string;
  private consumes = 0;
  private readonly className: string;
  private readonly id: string;

  /**
   * `mc`: the channel its mailbox is consumed on, its own or one its host's shared actors share.
   * `gone`: a shared actor has stopped (kill, exitActor()); the host forgets it.
   */
  constructor(
    private readonly rt: Runtime,
    private readonly instance: object,
    private readonly create: ActorCreation,
    private readonly held: { gpuIds: number[]; resources: Record<string, number> },
    private readonly send: (msg: WorkerToNode) => void,
    private readonly mc: MailboxChannel,
    private readonly gone: () => void,
  ) {
    this.className = create.handle.className;
    this.id = create.handle.id;
  }

  /** The connection is gone: a call delivered again from now on is a resend, not a crash's. */
  connectionLost(): void {
    this.reconnected = true;
  }

  /** A new connection: consume the mailbox again, once its channel is open anew. */
  async restore(): Promise<void> {
    if (this.stopped) return;
    await this.start();
    if (this.serving) await this.consumeMailbox();
  }

  /** Declares the mailbox on its channel, once that is open; calls come once it serves. */
  async start(): Promise<void> {
    await this.mc.ready;
    await this.rt.topo.declareMailbox(this.mc.ch, this.create.handle);
  }

  /**
   * Takes calls from the mailbox: once the head knows the actor is alive, so that no caller can
   * hold a call's result while the state API still says PENDING_CREATION.
   */
  async serve(): Promise<void> {
    if (this.serving) return;
    this.serving = true;
    await this.consumeMailbox();
  }

  /** Consumes the mailbox; if the broker cancels that (the mailbox deleted under a live actor), declares it again and consumes anew. */
  private async consumeMailbox(): Promise<void> {
    const mailbox = this.rt.topo.mailbox(this.create.handle);
    const again = () => this.exiting || resubscribe(`mailbox ${mailbox}`, async () => {
      await this.start();
      await this.consumeMailbox();
    }, (reason) => this.rt.channelLost(reason));
    // Named here, not by the broker's reply: a call may arrive, and stop the actor, before that reply is read.
    this.consumerTag = `${this.id}.${++this.consumes}`;
    await consumeQueue(this.mc.ch, mailbox, (m) => this.onCall(m), again, { consumerTag: this.consumerTag });
  }

  /** exitActor() was called: the actor ends once no call of it runs. */
  exitSoon(): void {
    this.exiting = true;
  }

  /**
   * A shared actor is killed (its host lives on, as for the others it hosts): as if its process
   * had been, every call it holds, started or not, goes back to the mailbox, for the next
   * incarnation (which fails or runs again a started one, by maxTaskRetries) or for its node to
   * answer once it is dead; what a started one still returns is dropped. Its mailbox then holds
   * every call it has not answered, and no consumer: the node may drain it.
   */
  async stop(): Promise<void> {
    this.exiting = true;
    await this.letGo();
    this.send({ t: "actor-stopped", id: this.id });
  }

  /** A shared actor leaves its host: no more calls come, and those it holds go back to the mailbox. */
  private async letGo(): Promise<void> {
    this.gone();
    // After a lost connection the consumer went with its channel.
    if (this.consumerTag && this.rt.link.up) await this.mc.ch.cancel(this.consumerTag).catch(() => undefined);
    this.mc.giveBack([...this.queue.splice(0), ...this.running]);
    this.stopped = true;
  }

  /** A call: queued to run, unless it is one this incarnation has queued, running or answered (sent again after an outage). */
  private onCall(m: amqp.ConsumeMessage): void {
    const id: string = m.properties.messageId;
    const call = { msg: m, epoch: this.mc.epoch };
    if (this.inProgress.has(id)) return this.settled(call);
    const done = this.answered.get(ownerOf(id))?.get(id);
    if (done) {
      publishResult(done);
      return this.settled(call);
    }
    this.inProgress.add(id);
    this.queue.push({ ...call, spec: readTask(m.content) });
    this.pump();
  }

  /** Starts, in arrival order, every waiting call whose group has room; calls that do not wait run to the end here. */
  private pump(): void {
    for (let i = 0; i < this.queue.length && !this.exiting; ) {
      const group = this.groupOf(this.queue[i]);
      const limit = group === "" ? this.create.maxConcurrency : this.create.concurrencyGroups[group];
      if ((this.busy.get(group) ?? 0) >= limit) { i++; continue; }
      const [call] = this.queue.splice(i, 1);
      this.busy.set(group, (this.busy.get(group) ?? 0) + 1);
      const done = () => this.busy.set(group, this.busy.get(group)! - 1);
      const ran = this.run(call, call.spec);
      if (!(ran instanceof Promise)) done();
      else {
        void ran.finally(() => {
          done();
          if (!this.exiting) this.pump();
        });
      }
    }
  }

  /**
   * A call is done with. An actor whose calls are never run again (maxTaskRetries 0) acks up to
   * actorAckDelayMs later, so a call one at a time costs the broker no ack of its own. Should the
   * actor die meanwhile, the broker hands the calls it answered to the next incarnation, which
   * answers ActorDiedError, ignored by callers that already have their result.
   */
  private settled(c: Call): void {
    this.mc.settle(c.msg, c.epoch, this.create.maxTaskRetries !== 0);
  }

  private groupOf(call: { spec: TaskSpec }): string {
    const method = call.spec.actor?.method;
    return (method && this.create.handle.methods[method]?.group) || "";
  }

  private run(call: Call, spec: TaskSpec): MaybePromise<void> {
    this.running.add(call);
    if (call.msg.fields.redelivered && this.create.maxTaskRetries === 0 && !this.reconnected) {
      const err = new ActorDiedError(
        `the actor ${this.className} (${this.create.handle.id}) died while ${spec.name} was sent to it, ` +
          "and maxTaskRetries is 0; the actor has restarted, so call again or raise maxTaskRetries",
      );
      return this.answer(call, { task: spec.id, error: encodeError(err) });
    }
    showTitle(spec.name);
    const ctx: TaskContext = {
      taskId: spec.id, taskName: spec.name, logName: this.className, jobId: this.create.detached ? "" : spec.job,
      namespace: spec.namespace, actorId: this.create.handle.id, canceled: false, ...this.held,
    };
    const result = execute(spec, ctx, (args) => {
      const method = (this.instance as Record<string, unknown>)[spec.actor!.method!];
      if (typeof method !== "function") throw new WarrenError(`${this.className} has no method ${spec.actor!.method}`);
      return method.apply(this.instance, args);
    });
    return andThen(result, (r) => this.answer(call, r));
  }

  private answer(call: Call, result: ResultMessage): MaybePromise<void> {
    if (this.stopped) return void this.running.delete(call); // given back: the mailbox answers it
    publishResult(result);
    const caller = ownerOf(result.task);
    let kept = this.answered.get(caller);
    if (!kept) this.answered.set(caller, (kept = new BoundedMap(actorResultsKept)));
    kept.set(result.task, result);
    this.inProgress.delete(result.task);
    this.settled(call);
    this.running.delete(call);
    if (this.exiting && this.running.size === 0) return this.exit();
  }

  /**
   * exitActor(): the node answers what is left in the mailbox once the actor is gone, its process
   * with it, or, for a shared actor, its consumer (the calls it holds given back).
   */
  private async exit(): Promise<void> {
    if (this.create.shared) {
      await this.letGo();
      this.mc.flush();
      return this.send({ t: "actor-exit", id: this.id });
    }
    this.send({ t: "actor-exit", id: this.id });
    await this.mc.close();
    await this.rt.close();
    process.exit(0);
  }
}
