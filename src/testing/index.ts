/** warren/testing: helpers for tests of programs built on warren. */
import { WarrenError } from "../errors";

/**
 * Resolves once `condition()` (sync or async) returns true, checking every 10 ms; rejects after
 * `timeout` seconds (default 10). For conditions nothing announces, like a file appearing.
 */
export async function waitForCondition(condition: () => boolean | Promise<boolean>, timeout = 10): Promise<void> {
  const end = Date.now() + timeout * 1000;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > end) throw new WarrenError(`condition not met within ${timeout}s: ${condition.toString().slice(0, 200)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
