// Surviving the broker: a private cluster on a RabbitMQ node of this file's own (port 5780, never
// the shared one) runs a stream of sync tasks, a pipelined batch, a task running across the
// outage, and sync and pipelined actor calls while that broker is (a) restarted gracefully and
// (b) SIGKILLed and started again. It counts every value received, every actor call executed
// (exactly once: a counter's final value and the values it returned), and reads an object put
// before the outage; past the outage limit (c), a clear error names the broker and how long.
import * as warren from "warren";
import { waitForCondition } from "warren/testing";
import { Counter } from "../fixtures/actors";
import { add, sleep } from "../fixtures/tasks";
import { SpareBroker } from "../spare-broker";
import { countThrough, expectNothingLost } from "../outage-work";

const broker = new SpareBroker(5780);

beforeAll(async () => {
  broker.remove();
  await broker.start();
}, 150_000);

afterAll(async () => {
  await warren.shutdown();
  broker.remove();
}, 60_000);

describe(`a private cluster on the broker at 127.0.0.1:${broker.port}`, () => {
  beforeAll(() => warren.init({ address: broker.address, numCpus: 2 }), 60_000);

  test("survives a graceful broker restart: every value comes back, every actor call runs once", async () => {
    const counted = await countThrough(async () => {
      await broker.stop();
      await broker.start();
    });
    expectNothingLost(counted);
  }, 240_000);

  test("survives the broker being SIGKILLed and started again", async () => {
    const counted = await countThrough(async () => {
      broker.kill();
      await waitForCondition(() => broker.processes().length === 0, 30);
      await broker.start();
    });
    expectNothingLost(counted);
  }, 240_000);

  test("a named actor and an object put before an outage are there after it", async () => {
    const named = Counter.options({ name: "outage-survivor", lifetime: "detached" }).remote(5);
    const kept = warren.put({ kept: true });
    expect(await warren.get(named.increment.remote())).toBe(6);
    broker.kill();
    await waitForCondition(() => broker.processes().length === 0, 30);
    await broker.start();
    const again = await warren.getActor<Counter>("outage-survivor");
    expect(await warren.get(again.increment.remote())).toBe(7);
    expect(await warren.get(kept)).toEqual({ kept: true });
    await warren.kill(again);
  }, 240_000);
});

describe("an outage past the limit (WARREN_BROKER_OUTAGE_S=3)", () => {
  beforeAll(async () => {
    await warren.shutdown();
    process.env.WARREN_BROKER_OUTAGE_S = "3"; // the cluster's processes inherit it
    await warren.init({ address: broker.address, numCpus: 1 });
  }, 60_000);
  afterAll(async () => {
    delete process.env.WARREN_BROKER_OUTAGE_S;
    await warren.shutdown();
  });

  test("fails what waits with an error naming the broker and how long it was gone", async () => {
    expect(await warren.get(add.remote(1, 1))).toBe(2);
    const waiting = warren.get(sleep.remote(60));
    const failed = expect(waiting).rejects.toThrow(/the RabbitMQ broker at amqp:\/\/guest:\*\*\*@127\.0\.0\.1:5780 has been gone for [3-9]\.\d s, longer than the 3 s warren waits for it/);
    await broker.stop();
    try {
      await failed;
      expect(() => add.remote(1, 2)).toThrow(/has been gone for/);
    } finally {
      await broker.start();
    }
  }, 120_000);
});
