// Durable mode on a 3-node RabbitMQ cluster of this file's own (ports 5782-5784, started with
// `warren broker start --nodes 3`): the node every process connects to first is SIGKILLed while
// tasks and actor calls run, and brought back. Processes fail over to the next URL of the list,
// the quorum queues elect new leaders and keep their messages, and nothing is lost.
import * as warren from "warren";
import { waitForCondition } from "warren/testing";
import { SpareCluster } from "../spare-broker";
import { countThrough, expectNothingLost } from "../outage-work";

const cluster = new SpareCluster(5782, 3);
const first = cluster.members[0];

beforeAll(async () => {
  cluster.remove();
  await cluster.start();
  await warren.init({ address: cluster.address, durable: true, numCpus: 2 });
}, 240_000);

afterAll(async () => {
  await warren.shutdown();
  cluster.remove();
}, 60_000);

test("the first node SIGKILLed and brought back: every value comes back, every actor call runs once", async () => {
  const said = jest.spyOn(console, "error");
  const counted = await countThrough(async () => {
    first.kill();
    await waitForCondition(() => first.processes().length === 0, 30);
    await cluster.start(); // starts the killed node again; it rejoins
  });
  expectNothingLost(counted);
  // Queued tasks stay in their quorum queue and are not sent again: only those running (or run
  // and not yet acked by their lease) at the outage may run twice, not the ~95 still queued (70 of
  // them ran twice when the owner sent every unfinished task again).
  expect(counted.queuedRanTwice).toBeLessThanOrEqual(6);
  // The driver says which node it lost and which one it reached, without the password.
  const lines = said.mock.calls.map((c) => String(c[0]));
  said.mockRestore();
  const url = (port: number) => `amqp://guest:***@127.0.0.1:${port}`;
  expect(lines).toContainEqual(expect.stringContaining(`lost the broker at ${url(5782)} (`));
  expect(lines).toContainEqual(expect.stringContaining(`reconnecting to ${url(5782)},${url(5783)},${url(5784)} for up to 60 s`));
  expect(lines).toContainEqual(expect.stringMatching(/reconnected to the broker at amqp:\/\/guest:\*\*\*@127\.0\.0\.1:578[34] after/));
}, 240_000);
