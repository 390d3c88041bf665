/**
 * `warren cleanup`: lists and removes what dead clusters left (core/leftovers.ts says how they
 * are found): their shape queues and actor mailboxes, exchanges and folders on this machine.
 */
import { redactAddress } from "../address";
import { deadHere, leftoversOf, removeLeftovers } from "../core/leftovers";
import { connectBroker, connectionName } from "../transport";

export async function cleanup(o: { address: string; cluster?: string; dryRun: boolean }): Promise<number> {
  const dead = deadHere({ only: o.cluster });
  if (dead.length === 0) {
    console.log(o.cluster
      ? `Nothing to clean up for cluster "${o.cluster}": it has no folder on this machine, or a process of it still runs here.`
      : "No dead clusters left anything on this machine (a folder changed in the last minute is left alone: name its cluster with --cluster).");
    return 0;
  }
  const conn = await connectBroker(o.address, connectionName(o.cluster ?? "", "cli", "cleanup"));
  let removed = 0;
  try {
    for (const cluster of dead) {
      const l = await leftoversOf(cluster);
      const what = `${l.queues.length} queue(s), ${l.exchanges.length} exchange(s), folder ${l.dir}`;
      if (o.dryRun) {
        console.log(`  would remove ${cluster}: ${what}`);
        for (const q of l.queues) console.log(`    queue ${q}`);
        continue;
      }
      if (await removeLeftovers(conn, l)) {
        removed++;
        console.log(`  removed ${cluster}: ${what}`);
      } else {
        console.log(`  kept ${cluster}: its head answers on ${redactAddress(o.address)} (it runs on another machine)`);
      }
    }
  } finally {
    await conn.close().catch(() => undefined);
  }
  console.log(o.dryRun ? `${dead.length} dead cluster(s) would be cleaned up (--dry-run: nothing removed).` : `Cleaned up ${removed} dead cluster(s).`);
  return 0;
}
