import * as warren from "warren";
import { add } from "../test/fixtures/tasks";
async function main() {
  await warren.init({ numCpus: 2 });
  for (let r = 0; r < 6; r++) {
    const t = Date.now(); let n = 0;
    while (Date.now() - t < 1500) { await warren.get(Array.from({ length: 1000 }, () => add.remote(1, 2))); n += 1000; }
    console.log("pipelined tasks/s", Math.round(n / ((Date.now() - t) / 1000)));
  }
  await warren.shutdown();
}
main();
