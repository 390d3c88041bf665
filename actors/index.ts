/**
 * warren/actors: ready-made actors, built only on warren's public API. They import "warren"
 * (never ../src), so the driver and the workers that load these modules share one copy of it.
 */
export { SignalActor } from "./signal";
export { Semaphore } from "./semaphore";
export { Queue } from "./queue";
export type { QueueOptions, QueueActor } from "./queue";
