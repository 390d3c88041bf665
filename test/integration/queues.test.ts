// What warren declares on the broker, read back with rabbitmqctl: every queue is durable or
// exclusive, since RabbitMQ 4.3 rejects a queue that is neither (transient_nonexcl_queues, the
// connection closed with 541), so a cluster that declared one would not start there. And a queue
// deleted under a live cluster (its consumers cancelled by the broker) is declared and consumed again.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import * as warren from "warren";
import { ClusterLock } from "warren";
import { add } from "../fixtures/tasks";
import { Counter } from "../fixtures/actors";
import { waitForCondition } from "warren/testing";

const run = promisify(execFile);

afterEach(() => warren.shutdown());

interface QueueRow {
  name: string;
  durable: boolean;
  exclusive: boolean;
}

/**
 * `rabbitmqctl list_queues` of the broker on 5672 (the one the suite uses): a row of columns per
 * queue. The broker is shared with other runs, which may have left tens of thousands of queues
 * (a crashed cluster's durable mailboxes): its listing can pass execFile's 1 MiB default.
 */
async function rabbitmqQueues(...columns: string[]): Promise<string[][]> {
  const { stdout } = await run("rabbitmqctl", ["-q", "--no-table-headers", "list_queues", ...columns], { timeout: 60_000, maxBuffer: 1 << 30 });
  return stdout.split("\n").filter((l) => l.includes("\t")).map((l) => l.split("\t"));
}

async function listQueues(): Promise<QueueRow[]> {
  return (await rabbitmqQueues("name", "durable", "exclusive")).map(([name, durable, exclusive]) => ({ name, durable: durable === "true", exclusive: exclusive === "true" }));
}

test("every queue a cluster declares is durable or exclusive (RabbitMQ 4.3 rejects the rest)", async () => {
  const { cluster } = await warren.init({ numCpus: 2, resources: { Special: 1 } });
  const prefix = `warren.${cluster}.`;
  expect(await warren.get(add.remote(1, 2))).toBe(3);
  expect(await warren.get(add.options({ resources: { Special: 1 } }).remote(2, 3))).toBe(5);
  const plain = Counter.remote();
  const named = Counter.options({ name: "queues-test" }).remote(10);
  expect(await warren.get([plain.increment.remote(), named.increment.remote()])).toEqual([1, 11]);
  const lock = new ClusterLock("queues-test");
  await lock.acquire();
  try {
    const ours = (await listQueues()).filter((q) => q.name.startsWith(prefix));
    const kinds = new Set(ours.map((q) => q.name.slice(prefix.length).split(".")[0]));
    // What the run made: shapes, mailboxes, inboxes, the head's queue and the node's.
    for (const kind of ["shape", "mailbox", "inbox", "head", "node"]) expect(kinds).toContain(kind);
    expect(ours.filter((q) => q.name.includes(".shape.")).length).toBeGreaterThanOrEqual(2);
    expect(ours.filter((q) => q.name.includes(".mailbox.")).length).toBeGreaterThanOrEqual(2);
    expect(ours.filter((q) => !q.durable && !q.exclusive)).toEqual([]);
  } finally {
    await lock.release();
  }
});

test("queues deleted under a live cluster are declared and consumed again: tasks and actor calls go on", async () => {
  const { cluster, jobId } = await warren.init({ numCpus: 1 });
  const prefix = `warren.${cluster}`;
  expect(await warren.get(add.remote(1, 2))).toBe(3);
  const counter = Counter.remote();
  expect(await warren.get(counter.increment.remote())).toBe(1);
  const shape = `${prefix}.shape.CPU:1`;
  const mailbox = `${prefix}.mailbox.Counter.${counter.actorId}`;
  const inbox = `${prefix}.inbox.${jobId}`;
  // The broker cancels every consumer of a deleted queue: the node's and the leases' (shape), the
  // actor's (mailbox), the driver's own (inbox, exclusive: only an operator can delete it).
  for (const q of [shape, mailbox, inbox]) await run("rabbitmqctl", ["-q", "delete_queue", q], { timeout: 60_000 });
  await waitForCondition(async () => {
    const consumers = new Map((await rabbitmqQueues("name", "consumers")).map(([name, n]) => [name, Number(n)]));
    return [shape, mailbox, inbox].every((q) => (consumers.get(q) ?? 0) >= 1);
  }, 20);
  expect(await warren.get(add.remote(2, 3), { timeout: 20 })).toBe(5);
  expect(await warren.get(counter.increment.remote(), { timeout: 20 })).toBe(2); // the actor kept its state
});

test("in durable mode shape queues and mailboxes are quorum queues, inboxes stay exclusive classic queues", async () => {
  const { cluster } = await warren.init({ numCpus: 1, durable: true });
  const prefix = `warren.${cluster}.`;
  const counter = Counter.remote();
  expect(await warren.get([add.remote(1, 2), counter.increment.remote(), counter.increment.remote()])).toEqual([3, 1, 2]);
  const rows = (await rabbitmqQueues("name", "type", "durable", "exclusive")).filter(([name]) => name.startsWith(prefix));
  const typeOf = (kind: string) => [...new Set(rows.filter(([name]) => name.startsWith(prefix + kind)).map(([, type, durable, exclusive]) => `${type} ${durable} ${exclusive || "false"}`))]; // rabbitmqctl leaves exclusive blank for quorum queues
  expect(typeOf("shape.")).toEqual(["quorum true false"]);
  expect(typeOf("mailbox.")).toEqual(["quorum true false"]);
  expect(typeOf("inbox.")).toEqual(["classic false true"]);
  // A dead actor's mailbox, a quorum queue, is emptied and removed (no if-empty delete there).
  warren.kill(counter);
  await waitForCondition(async () => !(await rabbitmqQueues("name")).some(([name]) => name === `${prefix}mailbox.Counter.${counter.actorId}`), 30);
}, 120_000);
