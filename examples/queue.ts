// Seed pattern "Message passing using Ray Queue": a queue passed to two consumer tasks.
import * as warren from "warren";
import { Queue } from "warren/actors";

export const consumer = warren.remote(async function consumer(queue: Queue<number>) {
  const nextItem = await queue.get({ block: true });
  console.log(`got work ${nextItem}`);
});

async function main() {
  await warren.init();
  // You can pass this object around to different tasks/actors.
  const queue = new Queue<number>({ maxsize: 100 });
  const consumers = Array.from({ length: 2 }, () => consumer.remote(queue));
  for (let i = 0; i < 10; i++) await queue.put(i);
  await warren.get(consumers);
  await warren.shutdown();
}

if (require.main === module) main();
