// The node's scheduler against a fake worker pool, fake consumers and a fake task channel: no
// broker, no processes (as Ray tests its local task manager with fake_worker_pool.h).
import type * as amqp from "amqplib";
import { ActorDiedError } from "../../src/errors";
import { Demand, Ledger, Resources, compileDemand } from "../../src/scheduling/shape";
import { GpuPool } from "../../src/node/gpus";
import type { Running } from "../../src/node/deliveries";
import { nodeOptions, type NodeOptions } from "../../src/node/options";
import { Scheduler, type ShapeFeed, type WorkerSlots } from "../../src/node/scheduler";

/** Workers that exist as counts: `ready(n)` makes n of those starting idle. */
class FakePool implements WorkerSlots {
  idle = 0;
  starting = 0;
  spawned = 0;
  readonly handed: Running[] = [];

  spawn(): void {
    this.spawned++;
    this.starting++;
  }

  hand(t: Running): void {
    if (this.idle === 0) throw new Error("handed a task with no idle worker");
    this.idle--;
    this.handed.push(t);
  }

  unacked(consumerTag: string): number {
    return this.handed.filter((t) => !t.acked && t.msg.fields.consumerTag === consumerTag).length;
  }

  ready(n: number): void {
    this.starting -= n;
    this.idle += n;
  }

  ids(): string[] {
    return this.handed.map((t) => t.msg.properties.messageId);
  }
}

/** A shape's consumer as ShapeConsumer is, less the broker: its window is `prefetch` while active. */
class FakeFeed implements ShapeFeed {
  active = false;
  prefetch = 0;
  /** Every consume's prefetch, in order. */
  readonly consumes: number[] = [];
  pauses = 0;
  private seq = 0;

  constructor(readonly shape: string, readonly units: Demand, private readonly onMessage: (m: amqp.ConsumeMessage) => void) {}

  get tag(): string {
    return `ctag-${this.shape}`;
  }

  room(unacked: (consumerTag: string) => number): number {
    return this.active ? this.prefetch - unacked(this.tag) : 0;
  }

  async consume(prefetch: number): Promise<void> {
    this.active = true;
    this.prefetch = prefetch;
    this.consumes.push(prefetch);
  }

  async pause(): Promise<void> {
    this.active = false;
    this.pauses++;
  }

  lost = 0;
  connectionLost(): void {
    this.lost++;
  }

  restores = 0;
  async restore(): Promise<void> {
    this.restores++;
  }

  /** The broker delivers a task of this shape. */
  deliver(id: string, headers?: Record<string, unknown>, redelivered = false): amqp.ConsumeMessage {
    const m = {
      content: Buffer.from(id),
      fields: { deliveryTag: ++this.seq, redelivered, consumerTag: this.tag, exchange: "tasks", routingKey: this.shape },
      properties: { messageId: id, headers },
    } as unknown as amqp.ConsumeMessage;
    this.onMessage(m);
    return m;
  }
}

interface Setup {
  total: Resources;
  options?: Partial<NodeOptions>;
  idle?: number;
  gpus?: number[];
}

/** Every scheduler made, stopped after each test (one that holds deliveries rechecks them on a timer). */
const made: Scheduler[] = [];

function setup({ total, options = {}, idle = 0, gpus = [] }: Setup) {
  const pool = new FakePool();
  pool.idle = idle;
  const free = new Ledger(total);
  const feeds = new Map<string, FakeFeed>();
  const acked: string[] = [];
  const givenBack: string[] = [];
  const redelivered: string[] = [];
  const dead: Array<{ id: string; error: Error }> = [];
  const gpuPool = new GpuPool(gpus);
  const scheduler = new Scheduler({
    options: nodeOptions({}, { leases: true, ...options }),
    total,
    free,
    gpus: gpuPool,
    workers: pool,
    channel: {
      ack: (m) => void acked.push(m.properties.messageId),
      giveBack: (m) => void givenBack.push(m.properties.messageId),
    },
    feed: (shape, units, onMessage) => {
      const feed = new FakeFeed(shape, units, onMessage);
      feeds.set(shape, feed);
      return feed;
    },
    onRedelivered: (m) => void redelivered.push(m.properties.messageId),
    actorDead: (actor, error) => void dead.push({ id: actor.id, error }),
  });
  made.push(scheduler);
  const feed = async (shape: string): Promise<FakeFeed> => {
    await scheduler.consumeShape(shape);
    return feeds.get(shape)!;
  };
  /** A task handed to a worker is done: its delivery acked, its resources free, its worker idle. */
  const finish = (id: string): void => {
    const t = pool.handed.find((r) => r.msg.properties.messageId === id)!;
    t.acked = true;
    free.give(t.units);
    gpuPool.release(t.gpuIds, t.demand.GPU ?? 0);
    pool.idle++;
    scheduler.schedule();
  };
  return { scheduler, pool, free, feeds, feed, acked, givenBack, redelivered, dead, finish };
}

afterEach(() => {
  for (const scheduler of made.splice(0)) scheduler.stop();
  jest.useRealTimers();
});

describe("admission", () => {
  test("deliveries are admitted in arrival order as far as resources allow", async () => {
    const s = setup({ total: { CPU: 2 }, idle: 3 });
    const cpu1 = await s.feed("CPU:1");
    const cpu2 = await s.feed("CPU:2");
    cpu1.deliver("a");
    cpu2.deliver("b"); // does not fit once a runs
    cpu1.deliver("c"); // fits beside a: it does not wait behind b
    cpu1.deliver("d");
    expect(s.pool.ids()).toEqual(["a", "c"]);
    expect(s.free.toResources()).toEqual({ CPU: 0 });
    expect(s.pool.handed.map((t) => t.shape)).toEqual(["CPU:1", "CPU:1"]);
  });

  test("a delivery that does not fit waits, and is admitted when resources are given back", async () => {
    const s = setup({ total: { CPU: 2 }, idle: 3 });
    const cpu1 = await s.feed("CPU:1");
    const cpu2 = await s.feed("CPU:2");
    cpu1.deliver("a");
    cpu2.deliver("b");
    expect(s.pool.ids()).toEqual(["a"]);
    s.finish("a");
    expect(s.pool.ids()).toEqual(["a", "b"]);
    expect(s.free.toResources()).toEqual({ CPU: 0 });
    cpu1.deliver("c"); // waits while b holds both CPUs
    expect(s.pool.ids()).toEqual(["a", "b"]);
    s.finish("b");
    expect(s.pool.ids()).toEqual(["a", "b", "c"]);
  });

  test("a task is handed its GPUs, and one whose GPU share is not free on one GPU waits", async () => {
    const s = setup({ total: { CPU: 4, GPU: 2 }, idle: 4, gpus: [0, 1] });
    const gpu = await s.feed("CPU:1,GPU:0.6");
    gpu.deliver("a");
    gpu.deliver("b");
    gpu.deliver("c"); // 0.8 GPU free in all, but 0.4 on each
    (await s.feed("CPU:1")).deliver("d"); // needs no GPU: it does not wait behind c
    expect(s.pool.ids()).toEqual(["a", "b", "d"]);
    expect(s.pool.handed.map((t) => t.gpuIds)).toEqual([[0], [1], []]);
    expect(s.pool.idle).toBe(1);
    s.finish("a");
    expect(s.pool.ids()).toEqual(["a", "b", "d", "c"]);
    expect(s.pool.handed[3].gpuIds).toEqual([0]);
  });

  test("a lost connection drops what waits (never acked on the next channel), and every consumer is restored", async () => {
    const s = setup({ total: { CPU: 1 }, idle: 2 });
    const cpu1 = await s.feed("CPU:1");
    const cpu2 = await s.feed("CPU:2"); // never fits: not consumed
    cpu1.deliver("a");
    cpu1.deliver("b"); // waits behind a
    cpu1.deliver("c");
    expect(s.scheduler.connectionLost().map((m) => m.properties.messageId)).toEqual(["b", "c"]);
    expect(cpu1.lost).toBe(1);
    s.finish("a");
    expect(s.pool.ids()).toEqual(["a"]); // b and c went with the connection
    expect(s.acked).toEqual([]); // dropped, not acked: their tags died with the channel
    await s.scheduler.restore();
    expect(cpu1.restores).toBe(1);
    expect(cpu2).toBeUndefined();
    cpu1.deliver("b"); // sent again by its owner
    expect(s.pool.ids()).toEqual(["a", "b"]);
  });

  test("a redelivered delivery goes to the retry policy, not to a worker", async () => {
    const s = setup({ total: { CPU: 1 }, idle: 1 });
    (await s.feed("CPU:1")).deliver("a", { attempt: 0 }, true);
    expect(s.redelivered).toEqual(["a"]);
    expect(s.pool.handed).toEqual([]);
  });

  test("a shape this node can never run is not consumed", async () => {
    const s = setup({ total: { CPU: 1 } });
    expect(await s.feed("CPU:2")).toBeUndefined();
    expect(await s.feed("CPU:1")).toBeDefined();
  });
});

describe("workers started", () => {
  test("one for each delivery that fits what is free, not one per delivery", async () => {
    const s = setup({ total: { CPU: 3 } });
    const cpu1 = await s.feed("CPU:1");
    for (const id of ["a", "b", "c", "d", "e"]) cpu1.deliver(id);
    expect(s.pool.spawned).toBe(3);
    expect(s.pool.handed).toEqual([]);
    // Those starting are counted: more deliveries start no more workers.
    cpu1.deliver("f");
    expect(s.pool.spawned).toBe(3);
    s.pool.ready(3);
    s.scheduler.schedule();
    expect(s.pool.ids()).toEqual(["a", "b", "c"]);
    expect(s.pool.spawned).toBe(3);
  });

  test("counted by what deliveries would take together", async () => {
    const s = setup({ total: { CPU: 3 } });
    const cpu2 = await s.feed("CPU:2");
    cpu2.deliver("a");
    cpu2.deliver("b");
    expect(s.pool.spawned).toBe(1);
  });

  test("only as many as are missing beside those starting", async () => {
    const s = setup({ total: { CPU: 4 } });
    s.pool.starting = 1;
    const cpu1 = await s.feed("CPU:1");
    cpu1.deliver("a");
    cpu1.deliver("b");
    cpu1.deliver("c");
    expect(s.pool.spawned).toBe(2);
  });
});

describe("cancelled tasks and killed actors", () => {
  test("a cancelled task's delivery is acked and dropped, not run", async () => {
    const s = setup({ total: { CPU: 2 }, idle: 2 });
    const cpu1 = await s.feed("CPU:1");
    s.scheduler.cancel("a");
    cpu1.deliver("a");
    cpu1.deliver("b");
    expect(s.acked).toEqual(["a"]);
    expect(s.pool.ids()).toEqual(["b"]);
    expect(s.free.toResources()).toEqual({ CPU: 1 });
  });

  test("a task cancelled while it waits is dropped at the next schedule", async () => {
    const s = setup({ total: { CPU: 1 } });
    const cpu1 = await s.feed("CPU:1");
    cpu1.deliver("a");
    expect(s.pool.spawned).toBe(1);
    s.scheduler.cancel("a");
    s.pool.ready(1);
    s.scheduler.schedule();
    expect(s.acked).toEqual(["a"]);
    expect(s.pool.handed).toEqual([]);
  });

  test("an actor killed for good before it started: its creation is acked, not run, and the actor buried", async () => {
    const s = setup({ total: { CPU: 1 }, idle: 1 });
    const cpu1 = await s.feed("CPU:1");
    s.scheduler.kill("actor1");
    cpu1.deliver("create1", { actor: "actor1", held: "none" });
    expect(s.acked).toEqual(["create1"]);
    expect(s.pool.handed).toEqual([]);
    expect(s.dead.map((d) => d.id)).toEqual(["actor1"]);
    expect(s.dead[0].error).toBeInstanceOf(ActorDiedError);
    expect(s.dead[0].error.message).toBe("the actor actor1 was killed before it started");
    // Another actor's creation still runs.
    cpu1.deliver("create2", { actor: "actor2", held: "none" });
    expect(s.pool.ids()).toEqual(["create2"]);
  });
});

describe("spillback", () => {
  test("with a peer that has room, a delivery waiting longer than spillMs is given back and the consumer paused", async () => {
    jest.useFakeTimers();
    const s = setup({ total: { CPU: 1 }, options: { leases: false }, idle: 2 });
    s.scheduler.peers = [{ nodeId: "peer", available: { CPU: 1 } }];
    const cpu1 = await s.feed("CPU:1");
    expect(cpu1.consumes).toEqual([4]);
    cpu1.deliver("a");
    expect(cpu1.active).toBe(true);
    cpu1.deliver("b"); // waits: a holds the only CPU
    expect(cpu1.pauses).toBe(1);
    expect(cpu1.active).toBe(false);
    jest.advanceTimersByTime(19);
    expect(s.givenBack).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(s.givenBack).toEqual(["b"]);
    expect(s.acked).toEqual([]);
    // Nothing of the shape waits any more: the consumer takes more again, b is not run here.
    s.finish("a");
    expect(cpu1.consumes).toEqual([4, 4]);
    expect(s.pool.ids()).toEqual(["a"]);
  });

  test("without a peer that has room, a delivery that waits stays", async () => {
    jest.useFakeTimers();
    const s = setup({ total: { CPU: 1 }, idle: 2 });
    s.scheduler.peers = [{ nodeId: "peer", available: { CPU: 0.5 } }];
    const cpu1 = await s.feed("CPU:1");
    cpu1.deliver("a");
    cpu1.deliver("b");
    jest.advanceTimersByTime(1000);
    expect(s.givenBack).toEqual([]);
    s.finish("a");
    expect(s.pool.ids()).toEqual(["a", "b"]);
  });

  test("nothing is balanced or consumed after stop", async () => {
    jest.useFakeTimers();
    const s = setup({ total: { CPU: 1 }, idle: 2 });
    s.scheduler.peers = [{ nodeId: "peer", available: { CPU: 1 } }];
    const cpu1 = await s.feed("CPU:1");
    cpu1.deliver("a");
    cpu1.deliver("b");
    s.scheduler.stop();
    expect(cpu1.active).toBe(false); // its queue may be deleted next: the consumer must not declare it again
    s.scheduler.schedule(); // a worker's message after stop
    jest.advanceTimersByTime(1000);
    expect(s.givenBack).toEqual([]);
  });
});

describe("consumer windows", () => {
  test("with leases, a window of the free slots; paused while none is free, consumed again when one is", async () => {
    const s = setup({ total: { CPU: 2 }, idle: 2 });
    const cpu1 = await s.feed("CPU:1");
    expect(cpu1.consumes).toEqual([2]);
    cpu1.deliver("a");
    cpu1.deliver("b");
    expect(cpu1.active).toBe(false);
    s.finish("a");
    expect(cpu1.consumes).toEqual([2, 1]);
  });

  test("with leases, a window that running tasks still hold is renewed when a slot frees", async () => {
    const s = setup({ total: { CPU: 3 }, idle: 3 });
    const elsewhere = compileDemand({ CPU: 1 });
    s.free.take(elsewhere); // a lease holds one slot
    const cpu1 = await s.feed("CPU:1");
    expect(cpu1.consumes).toEqual([2]);
    cpu1.deliver("a"); // runs unacked: it holds one of the window's two
    expect(cpu1.consumes).toEqual([2]); // room 1 for 1 free slot
    s.free.give(elsewhere);
    s.scheduler.schedule();
    expect(cpu1.consumes).toEqual([2, 2]); // room 1 for 2 free slots
  });

  test("without leases, a window of two per slot plus two, capped at maxWindow, resumed once nothing waits", async () => {
    jest.useFakeTimers();
    const s = setup({ total: { CPU: 4 }, options: { leases: false }, idle: 4 });
    expect((await s.feed("CPU:1")).consumes).toEqual([10]);
    expect((await s.feed("none")).consumes).toEqual([256]);
    const cpu4 = await s.feed("CPU:4");
    expect(cpu4.consumes).toEqual([4]);
    s.scheduler.peers = [{ nodeId: "peer", available: { CPU: 4 } }];
    cpu4.deliver("a");
    cpu4.deliver("b");
    expect(cpu4.active).toBe(false);
    jest.advanceTimersByTime(20);
    expect(s.givenBack).toEqual(["b"]);
    s.scheduler.schedule();
    expect(cpu4.consumes).toEqual([4, 4]);
  });
});
