/**
 * A worker that hosts an actor: it consumes the actor's mailbox and runs calls in arrival order,
 * up to `maxConcurrency` at once (1 for actors with only sync methods, so calls never interleave);
 * methods in a concurrency group count against that group's limit instead.
 * A call delivered again after a crash was in flight on the dead incarnation: it runs again only
 * if maxTaskRetries allows, otherwise its caller gets ActorDiedError.
 */
import type * as amqp from "amqplib";
import { ActorDiedError, WarrenError } from "../errors";
import { encodeError } from "../serialization";
import { consumeQueue, declareSharedQueue, resubscribe, watchChannel } from "../transport";
import type { Runtime } from "../core/runtime";
import type { TaskContext } from "../core/context";
import { ActorCreation, ResultMessage, TaskSpec, readTask } from "../wire/messages";
import type { WorkerToNode } from "../wire/ipc";
import { MaybePromise, andThen, execute, publishResult, showTitle } from "./execute";
import { WORKER_DEFAULTS } from "./defaults";

const { actorAckDelayMs } = WORKER_DEFAULTS;

export class ActorHost {
  /** Calls delivered and not yet started, read on arrival (the method decides the concurrency group). */
  private readonly queue: { msg: amqp.ConsumeMessage; spec: TaskSpec }[] = [];
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
    this.ch = await this.rt.conn.createChannel();
    watchChannel(this.ch, (reason) => this.exiting || this.rt.channelLost(reason));
    const mailbox = this.rt.topo.mailbox(this.create.handle.id);
    await declareSharedQueue(this.ch, mailbox);
    // Calls already delivered count as sent to this incarnation (Ray's rule too), so a deeper
    // prefetch only trades how many fail on a crash for fewer round trips under load.
    await this.ch.prefetch(this.prefetch);
    this.rt.onExitActor = () => { this.exiting = true; };
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
    const mailbox = this.rt.topo.mailbox(this.create.handle.id);
    const again = () => this.exiting || resubscribe(`mailbox ${mailbox}`, async () => {
      await declareSharedQueue(this.ch, mailbox);
      await this.consumeMailbox();
    }, (reason) => this.rt.channelLost(reason));
    await consumeQueue(this.ch, mailbox, (m) => {
      this.queue.push({ msg: m, spec: readTask(m.content) });
      this.pump();
    }, again);
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
      const ran = this.run(call.msg, call.spec);
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

  private groupOf(call: { spec: TaskSpec }): string {
    const method = call.spec.actor?.method;
    return (method && this.create.handle.methods[method]?.group) || "";
  }

  private run(msg: amqp.ConsumeMessage, spec: TaskSpec): MaybePromise<void> {
    this.running++;
    if (msg.fields.redelivered && this.create.maxTaskRetries === 0) {
      const err = new ActorDiedError(
        `the actor ${this.className} (${this.create.handle.id}) died while ${spec.name} was sent to it, ` +
          "and maxTaskRetries is 0; the actor has restarted, so call again or raise maxTaskRetries",
      );
      return this.answer(msg, { task: spec.id, error: encodeError(err) });
    }
    showTitle(spec.name);
    const ctx: TaskContext = {
      taskId: spec.id, taskName: spec.name, logName: this.className, jobId: spec.job,
      namespace: spec.namespace, actorId: this.create.handle.id, canceled: false, ...this.held,
    };
    const result = execute(spec, ctx, (args) => {
      const method = (this.instance as Record<string, unknown>)[spec.actor!.method!];
      if (typeof method !== "function") throw new WarrenError(`${this.className} has no method ${spec.actor!.method}`);
      return method.apply(this.instance, args);
    });
    return andThen(result, (r) => this.answer(msg, r));
  }

  private answer(msg: amqp.ConsumeMessage, result: ResultMessage): MaybePromise<void> {
    publishResult(result);
    this.finished.set(msg.fields.deliveryTag, msg);
    this.ackSoon();
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
