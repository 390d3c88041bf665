// A worker's lease on a shape queue (worker/lease.ts), on the real broker: the races between a
// lease ending and the tasks it still receives.
import type * as amqp from "amqplib";
import { Lease, leaseWindow } from "../../src/worker/lease";
import { brokerQueue } from "../helpers";

const broker = brokerQueue("lease");
const { queue } = broker;
let leaseCh: amqp.Channel;
let probe: amqp.Channel;
beforeAll(async () => {
  probe = broker.ch;
  leaseCh = await broker.conn.createChannel();
});

/** Message ids the lease's consumer has received, and a way to await one. */
function watchDeliveries(ch: amqp.Channel): (id: string) => Promise<void> {
  const seen = new Set<string>();
  const waiters: (() => void)[] = [];
  const consume = ch.consume.bind(ch);
  ch.consume = ((q: string, onMessage: (m: amqp.ConsumeMessage | null) => void, options?: amqp.Options.Consume) =>
    consume(q, (m) => {
      onMessage(m);
      if (m) seen.add(m.properties.messageId);
      for (const w of waiters.splice(0)) w();
    }, options)) as typeof ch.consume;
  return async (id) => {
    while (!seen.has(id)) await new Promise<void>((r) => waiters.push(r));
  };
}

test("a task that came as its lease was ending, then waits for a child the lease holds, gets the child given back", async () => {
  const delivered = watchDeliveries(leaseCh);
  const send = (id: string) => probe.sendToQueue(queue, Buffer.from(id), { messageId: id });
  // The lease ends once idle; hold its cancel until a parent task and then its child have arrived.
  const cancel = leaseCh.cancel.bind(leaseCh);
  leaseCh.cancel = (async (tag: string) => {
    leaseCh.cancel = cancel;
    send("parent");
    await delivered("parent");
    await delivered("child");
    return cancel(tag);
  }) as typeof leaseCh.cancel;

  const ran: string[] = [];
  let givenBack: string | undefined;
  let lease!: Lease;
  const returned = new Promise<void>((resolve) => {
    lease = new Lease(leaseCh, queue, 1, 0, async (m) => {
      const id = m.properties.messageId;
      ran.push(id);
      if (id === "parent") {
        send("child");
        await delivered("child");
        await lease.suspend(); // the parent now waits in get() for its child
        givenBack = await firstDelivery(probe, queue);
        await lease.resume();
      }
      return true;
    }, resolve, leaseWindow(false));
  });
  await lease.start();
  await returned;

  expect(givenBack).toBe("child");
  expect(ran).toEqual(["parent"]);
  expect((await probe.checkQueue(queue)).messageCount).toBe(0);
});

/** The id of the first message a new consumer of `q` gets within 5 s (acked), or undefined. */
async function firstDelivery(ch: amqp.Channel, q: string): Promise<string | undefined> {
  let timer!: NodeJS.Timeout;
  let tag: string | undefined;
  const id = await new Promise<string | undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), 5000);
    void ch.consume(q, (m) => {
      if (!m) return;
      ch.ack(m);
      resolve(m.properties.messageId);
    }).then((c) => (tag = c.consumerTag));
  });
  clearTimeout(timer);
  if (tag) await ch.cancel(tag);
  return id;
}
