// Lightweight actors, as in Orleans or Akka: a thousand of them, each with its own state and its
// own ordered calls, live in one host process of the node (process: "shared") instead of a
// process each. The same handle API: calls, kill(), restarts.
import * as assert from "node:assert/strict";
import * as warren from "warren";

@warren.actor({ numCpus: 0, process: "shared" })
export class Account extends warren.Actor {
  private balance: number;
  constructor(opening: number) {
    super();
    this.balance = opening;
  }
  deposit(amount: number) {
    this.balance += amount;
    return this.balance;
  }
  where() {
    return process.pid;
  }
}

async function main() {
  await warren.init();
  const started = Date.now();
  const accounts = Array.from({ length: 1000 }, (_, i) => Account.remote(i));
  const balances = await warren.get(accounts.map((a) => a.deposit.remote(100)));
  const seconds = (Date.now() - started) / 1000;
  assert.deepEqual(balances, accounts.map((_, i) => i + 100));
  const hosts = new Set(await warren.get(accounts.map((a) => a.where.remote())));
  console.log(`${accounts.length} actors created and called in ${seconds.toFixed(1)} s, in ${hosts.size} host process(es)`);
  assert.equal(hosts.size, 1);

  // One actor killed; the others in its host live on.
  await warren.kill(accounts[0]);
  await assert.rejects(warren.get(accounts[0].deposit.remote(1)), warren.ActorDiedError);
  assert.equal(await warren.get(accounts[1].deposit.remote(1)), 102);
  await Promise.all(accounts.slice(1).map((a) => warren.kill(a)));
  await warren.shutdown();
}

if (require.main === module) main();
