/**
 * node deliveries: what a node holds of the shape queues (a delivery waiting to start, a task
 * running on one of its workers) and the task channel it settles them on. Every delivery a node
 * holds is settled exactly once on that channel: acked when its task is done or dropped, given
 * back (a copy to the queue's tail, this one acked) when another node should take it, or left to
 * the broker to requeue if this node dies. A second ack of one delivery closes the channel, and
 * with it the node; so a running task is acked through ackTask, which remembers that it was.
 */
import type * as amqp from "amqplib";
import type { Demand, Resources } from "../scheduling/shape";
import { giveBack, nextAttempt, publishAgain } from "../scheduling/retry";

/** A delivery of a shape queue this node holds, not yet handed to a worker. */
export interface Delivery {
  msg: amqp.ConsumeMessage;
  demand: Resources;
  units: Demand;
  shape: string;
  /** When it came (Date.now()), for spillback. */
  received: number;
}

/** A delivery handed to a worker of this node. */
export interface Running extends Delivery {
  gpuIds: number[];
  cancelled: boolean;
  started: number;
  /** Acked before it finished; the head knows it runs here (see the daemon's ackEarly). */
  acked: boolean;
}

/**
 * The channel a node consumes shape queues on, and every way it settles their deliveries. The
 * daemon sets `ch` on each connection (the link's outbox while it is down, and marks the tasks
 * then running acked: their tags died with the channel).
 */
export class TaskChannel {
  ch!: amqp.Channel;

  ack(m: amqp.Message): void {
    this.ch.ack(m);
  }

  /** Acks a running task's delivery unless it already was. */
  ackTask(t: Running): void {
    if (t.acked) return;
    t.acked = true;
    this.ch.ack(t.msg);
  }

  /** Gives a delivery back unstarted (scheduling/retry.ts giveBack). */
  giveBack(m: amqp.ConsumeMessage): void {
    giveBack(this.ch, m);
  }

  /** Sends a delivery back to its queue for another attempt (or restart), with `headers`. */
  republish(m: amqp.ConsumeMessage, headers = nextAttempt(m.properties.headers)): void {
    publishAgain(this.ch, m, headers);
  }
}
