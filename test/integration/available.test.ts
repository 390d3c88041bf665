// availableResources() reads the driver's own writes: an actor it has seen placed (its first call
// answered) holds its resources there at once, and one it has killed has given them back.
import * as warren from "warren";
import { waitForCondition } from "warren/testing";
import { Counter } from "../fixtures/actors";

beforeAll(() => warren.init({ numCpus: 4, resources: { Custom: 3 } }));
afterAll(() => warren.shutdown());

/** The CPU and Custom that availableResources() shows free now. */
async function free(): Promise<{ CPU?: number; Custom?: number }> {
  const { CPU, Custom } = await warren.availableResources();
  return { CPU, Custom };
}

test("actors that answered a call hold their CPU and Custom in availableResources() at once; killed, they give them back", async () => {
  await waitForCondition(async () => (await free()).CPU === 4);
  for (let round = 0; round < 3; round++) {
    expect({ round, ...(await free()) }).toEqual({ round, CPU: 4, Custom: 3 });
    const actors = Array.from({ length: 3 }, () => Counter.options({ numCpus: 1, resources: { Custom: 1 } }).remote());
    await warren.get(actors.map((a) => a.increment.remote()));
    expect({ round, ...(await free()) }).toEqual({ round, CPU: 1, Custom: undefined }); // none left: Ray leaves it out
    for (const a of actors) await warren.kill(a);
  }
});
