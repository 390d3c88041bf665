/**
 * warren: Ray's core programming model for TypeScript and JavaScript on RabbitMQ, xstate and LMDB.
 * This file is the package's public surface; API.md is its contract.
 */
export * from "./api";
export { ObjectRef } from "./objects/ref";
export * from "./errors";
/** For classes that travel between processes like actor handles (see actors/queue.ts). */
export { registerRevival } from "./serialization";
export type { TaskOptions, ActorOptions, MethodOptions, InitOptions } from "./options";
export * from "./coordination";
