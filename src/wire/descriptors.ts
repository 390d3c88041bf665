/**
 * wire: how a message names code. A remote function or actor class is named by where it is
 * defined (core/functions.ts registers it there), an actor by a self-describing handle, so a
 * process that receives either can find the code by loading a module by path: nothing in a
 * message is ever evaluated.
 */

export interface Descriptor {
  /** Absolute path of the defining module, or `warren:<name>` for warren's own (worker/wasm.ts). */
  module: string;
  /** `<ordinal>` of the registration within the module. */
  index: number;
  /** Function or class name, for titles, logs and errors. */
  name: string;
}

/** What an actor handle carries: enough to call the actor from any process it is sent to. */
export interface HandleInfo {
  id: string;
  className: string;
  cls: Descriptor;
  /** Each method's default numReturns, and its concurrency group if it has one. */
  methods: Record<string, { numReturns: number; group?: string }>;
}

/** What names an actor's mailbox (transport's Topology.mailbox): its id and its class. */
export type ActorName = Pick<HandleInfo, "id" | "className">;

/** The actor a creation message makes, from its headers `actor` and `actorClass` (api/actor.ts sets them). */
export function creationActor(headers: Record<string, any> | undefined): ActorName | undefined {
  return headers?.actor ? { id: headers.actor, className: headers.actorClass ?? "" } : undefined;
}

/** A shared actor's creation (`process: "shared"`): a node places it in a host process, not an idle worker. */
export function sharedCreation(headers: Record<string, any> | undefined): boolean {
  return headers?.shared === true;
}
