/**
 * A worker that hosts an actor: it consumes the actor's mailbox and runs calls in arrival order,
 * up to `maxConcurrency` at once (1 for actors with only sync methods, so calls never interleave);
 * methods in a concurrency group count against that group's limit instead.
 * A call delivered again after a crash was in flight on the dead incarnation: it runs again only
 * if maxTaskRetries allows, otherwise its caller gets ActorDiedError.
 *
 * Calls run exactly once across broker outages: the actor process lives through them, its
 * callers send again the calls they have no answer for, and the host drops a call it has queued
 * or running and answers again one it has run (the latest actorResultsKept per caller).
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

const { actorAckDelayMs, actorResultsKept } = WORKER_DEFAULTS;

export class ActorHost {
  /** Calls delivered and not yet started, read on arrival (the method decides the concurrency group), with the channel's epoch. */
  private readonly queue: { msg: amqp.ConsumeMessage; spec: TaskSpec; epoch: number }[] = [];
  /** Calls queued or running (by task id), and per caller the results of the latest run. */
  private readonly inProgress = new Set<string>();
  private readonly answered = new BoundedMap<string, BoundedMap<string, ResultMessage>>(actorResultsKept);
  /** Counts the mailbox channels: a call's ack belongs to the channel it came on, gone with a lost connection. */
  private epoch = 0;
  /** The connection has been lost once at least: a call delivered again is a resend, not a crash's. */
  private reconnected = false;
  private running = 0;
  /** Calls running per concurrency group ("" is the default group, limited by maxConcurrency). */
  private readonly busy = new Map<string, number>();
  private exiting = false;
  private serving = false;
  private ch!: amqp.Channel;
  private readonly className: string;
  /**
   * Acks (when: ackSoon) are one `multiple` ack up to the oldest call still running, and single
   * acks for calls finished after it. The channel carries only this mailbox's deliveries, so
   * their tags run 1, 2, 3... `lowest` is the oldest not yet acked; `ackedAbove` those acked
   * singly above it.
   */
  private readonly finished = new Map<number, amqp.ConsumeMessage>();
  private readonly ackedAbove = new Set<number>();
  private lowest = 1;
  private ackTimer?: NodeJS.Timeout;
  private readonly prefetch: number;

  constructor(
    private readonly rt: Runtime,
    private readonly instance: object,
    private readonly create: ActorCreation,
    private readonly held: { gpuIds: number[]; resources: Record<string, number> },
    private readonly send: (msg: WorkerToNode) => void,
  ) {
    this.className = create.handle.className;
    this.prefetch = Math.min(Math.max(create.maxConcurrency, 100), 1000);
  }

  async start(): Promise<void> {
    await this.openChannel();
    this.rt.onExitActor = () => { this.exiting = true; };
    this.rt.onLink({
      down: () => {
        this.ch = this.rt.link.outbox.channel;
        this.reconnected = true;
        this.epoch++;
        // The tags to ack died with the channel (the broker requeued those calls, or lost them).
        clearTimeout(this.ackTimer);
        this.ackTimer = undefined;
        this.finished.clear();
        this.ackedAbove.clear();
        this.lowest = 1;
      },
      restore: async () => {
        await this.openChannel();
        if (this.serving) await this.consumeMailbox();
      },
    });
  }

  private async openChannel(): Promise<void> {
    const ch = await this.rt.conn.createChannel();
    this.rt.link.watch(ch, (err) => this.exiting || this.rt.channelLost(err), "the mailbox");
    await this.rt.topo.declareMailbox(ch, this.create.handle);
    // Calls already delivered count as sent to this incarnation (Ray's rule too), so a deeper
    // prefetch only trades how many fail on a crash for fewer round trips under load.
    await ch.prefetch(this.prefetch);
    this.ch = ch;
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
      await this.rt.topo.declareMailbox(this.ch, this.create.handle);
      await this.consumeMailbox();
    }, (reason) => this.rt.channelLost(reason));
    await consumeQueue(this.ch, mailbox, (m) => this.onCall(m), again);
  }

  /** A call: queued to run, unless it is one this incarnation has queued, running or answered (sent again after an outage). */
  private onCall(m: amqp.ConsumeMessage): void {
    const id: string = m.properties.messageId;
    if (this.inProgress.has(id)) return this.settled(m, this.epoch);
    const done = this.answered.get(ownerOf(id))?.get(id);
    if (done) {
      publishResult(done);
      return this.settled(m, this.epoch);
    }
    this.inProgress.add(id);
    this.queue.push({ msg: m, spec: readTask(m.content), epoch: this.epoch });
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
      const ran = this.run(call.msg, call.spec, call.epoch);
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
   * Acks go out at the end of the tick, or, for an actor whose calls are never run again
   * (maxTaskRetries 0), up to actorAckDelayMs later and half a window at a time: a call one at a time
   * then costs the broker no ack of its own. Should the actor die meanwhile, the broker hands the
   * calls it answered to the next incarnation, which answers ActorDiedError, ignored by callers
   * that already have their result.
   */
  private ackSoon(): void {
    if (this.create.maxTaskRetries !== 0) {
      if (this.finished.size === 1) process.nextTick(() => this.flushAcks());
    } else if (this.finished.size >= this.prefetch / 2) this.flushAcks();
    else this.ackTimer ??= setTimeout(() => this.flushAcks(), actorAckDelayMs);
  }

  private flushAcks(): void {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    let upTo: amqp.ConsumeMessage | undefined;
    for (;;) {
      const m = this.finished.get(this.lowest);
      if (m) {
        upTo = m;
        this.finished.delete(this.lowest);
      } else if (!this.ackedAbove.delete(this.lowest)) break;
      this.lowest++;
    }
    if (upTo) this.ch.ack(upTo, true);
    for (const [tag, m] of this.finished) {
      this.ch.ack(m);
      this.ackedAbove.add(tag);
    }
    this.finished.clear();
  }

  /** A call is done with: acked soon, if its channel is still the current one. */
  private settled(msg: amqp.ConsumeMessage, epoch: number): void {
    if (epoch !== this.epoch) return;
    this.finished.set(msg.fields.deliveryTag, msg);
    this.ackSoon();
  }

  private groupOf(call: { spec: TaskSpec }): string {
    const method = call.spec.actor?.method;
    return (method && this.create.handle.methods[method]?.group) || "";
  }

  private run(msg: amqp.ConsumeMessage, spec: TaskSpec, epoch: number): MaybePromise<void> {
    this.running++;
    if (msg.fields.redelivered && this.create.maxTaskRetries === 0 && !this.reconnected) {
      const err = new ActorDiedError(
        `the actor ${this.className} (${this.create.handle.id}) died while ${spec.name} was sent to it, ` +
          "and maxTaskRetries is 0; the actor has restarted, so call again or raise maxTaskRetries",
      );
      return this.answer(msg, epoch, { task: spec.id, error: encodeError(err) });
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
    return andThen(result, (r) => this.answer(msg, epoch, r));
  }

  private answer(msg: amqp.ConsumeMessage, epoch: number, result: ResultMessage): MaybePromise<void> {
    publishResult(result);
    const caller = ownerOf(result.task);
    let kept = this.answered.get(caller);
    if (!kept) this.answered.set(caller, (kept = new BoundedMap(actorResultsKept)));
    kept.set(result.task, result);
    this.inProgress.delete(result.task);
    this.settled(msg, epoch);
    --this.running;
    if (this.exiting && this.running === 0) return this.exit();
  }

  /** exitActor(): the node answers what is left in the mailbox once this process is gone. */
  private async exit(): Promise<void> {
    this.flushAcks();
    this.send({ t: "actor-exit" });
    await this.ch.close();
    await this.rt.close();
    process.exit(0);
  }
}
