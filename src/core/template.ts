/**
 * core: what a call is before it is sent. A TaskTemplate is everything `.remote()` needs that
 * does not change per call (computed once by `.options()`); a Route sends a call to an actor's
 * mailbox instead of a shape's queue. Also the types of what `.remote()` takes and returns.
 */
import type { ObjectRef } from "../objects/ref";
import type { Descriptor } from "../wire/descriptors";
import type { TaskHead } from "../wire/messages";

export interface TaskTemplate {
  fn: Descriptor;
  name: string;
  shape: string;
  numReturns: number;
  maxRetries: number;
  retryExceptions: boolean;
  /** The actor an actor call or creation is for. */
  actor?: TaskHead["actor"];
  /** Its head's bytes (wire/messages.ts) for the job that last submitted it. */
  head?: { job: string; namespace: string; bytes: Buffer };
}

/** Where a routed message goes: an actor's mailbox, after `after` (its declaration) if set. */
export interface Route {
  exchange: string;
  key: string;
  after?: Promise<void>;
  headers?: Record<string, unknown>;
}

/** A promise already settled: what a mailbox or shape maps to once declared. */
export const DECLARED = Promise.resolve();

/** Each argument may be given as a value or as an ObjectRef to one. */
export type RemoteArgs<A extends unknown[]> = { [K in keyof A]: A[K] | ObjectRef<A[K]> };

type Element<R> = R extends readonly (infer E)[] ? E : unknown;

/** One ref per returned element: a tuple of refs when the function returns a tuple of N elements. */
type ElementRefs<R, N extends number> = R extends readonly unknown[]
  ? R["length"] extends N ? { -readonly [K in keyof R]: ObjectRef<R[K]> } : ObjectRef<Element<R>>[]
  : ObjectRef<unknown>[];

/** What `.remote()` returns for `numReturns: N`: one ref, none, or one per returned element. */
export type ReturnRefs<R, N extends number> = number extends N
  ? ObjectRef<R> | ObjectRef<Element<R>>[]
  : N extends 1 ? ObjectRef<R> : N extends 0 ? undefined : ElementRefs<R, N>;
