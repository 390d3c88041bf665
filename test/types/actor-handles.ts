// Compile-time checks of the typed API; `npm run typecheck` fails if any expectation breaks.
// Every `@ts-expect-error` line must be an error, and every other line must compile.
import * as warren from "warren";
import { Counter } from "../fixtures/actors";
import { add, nameAndLength } from "../fixtures/tasks";

export function typedHandles(): void {
  const c: warren.ActorHandle<Counter> = Counter.remote(3);
  const ref: warren.ObjectRef<number> = c.increment.remote(2);
  const byRef: warren.ObjectRef<number> = c.increment.remote(warren.put(1));
  const value: Promise<number> = warren.get(ref);
  const pair: Promise<[number, string]> = warren.get([ref, warren.put("x")] as const);
  void [byRef, value, pair];

  // @ts-expect-error: increment takes a number
  c.increment.remote("two");
  // @ts-expect-error: no such method
  c.decrement.remote();
  // @ts-expect-error: the constructor takes a number
  Counter.remote("start");
  // @ts-expect-error: an ObjectRef<number> is not a string
  const wrong: warren.ObjectRef<string> = c.increment.remote();
  void wrong;
}

export function typedTasks(): void {
  const sum: warren.ObjectRef<number> = add.remote(1, 2);
  const [a, b] = add.options({ numReturns: 2 }).remote(1, 2);
  void [sum, a, b];
  // numReturns: 2 of a function returning a tuple of 2: a tuple of refs, typed per element
  const [name, size] = nameAndLength.options({ numReturns: 2 }).remote("warren");
  const typed: [warren.ObjectRef<string>, warren.ObjectRef<number>] = [name, size];
  void typed;
  // @ts-expect-error: the second ref is an ObjectRef<number>
  const swapped: warren.ObjectRef<string> = nameAndLength.options({ numReturns: 2 }).remote("x")[1];
  void swapped;
  // @ts-expect-error: add takes numbers
  add.remote("1", 2);
  // @ts-expect-error: unknown option
  add.options({ numCPUs: 1 });
}
