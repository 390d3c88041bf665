// What warren declares on the broker, read back with rabbitmqctl: every queue is durable or
// exclusive, since RabbitMQ 4.3 rejects a queue that is neither (transient_nonexcl_queues, the
// connection closed with 541), so a cluster that declared one would not start there.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import * as warren from "warren";
import { ClusterLock } from "warren";
import { add } from "../fixtures/tasks";
import { Counter } from "../fixtures/actors";

const run = promisify(execFile);

afterAll(() => warren.shutdown());

interface QueueRow {
  name: string;
  durable: boolean;
  exclusive: boolean;
}

/** Every queue of the broker on 5672 (the one the suite uses), as rabbitmqctl lists them. */
async function listQueues(): Promise<QueueRow[]> {
  const { stdout } = await run("rabbitmqctl", ["-q", "--no-table-headers", "list_queues", "name", "durable", "exclusive"], { timeout: 60_000 });
  return stdout.split("\n").filter((l) => l.includes("\t")).map((l) => {
    const [name, durable, exclusive] = l.split("\t");
    return { name, durable: durable === "true", exclusive: exclusive === "true" };
  });
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
