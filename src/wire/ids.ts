/**
 * wire: the ids every message carries. An object id is 40 hex digits: the owner's id (16), a
 * per-owner counter (16), and the return index (8); a task id is the first 32. The owner is
 * therefore readable from any task or object id, so whoever holds one knows whose inbox to
 * answer or ask, and ids are minted with no random draw on the hot path.
 */
import { randomBytes } from "node:crypto";

const OWNER_HEX = 16;
const TASK_HEX = 32;

export function newOwnerId(): string {
  return randomBytes(OWNER_HEX / 2).toString("hex");
}

/** Mints task ids for one owner: `ownerId + counter`. */
export class TaskIds {
  private counter = 0;
  constructor(readonly ownerId: string) {}

  next(): string {
    return this.ownerId + (++this.counter).toString(16).padStart(TASK_HEX - OWNER_HEX, "0");
  }
}

/** Return `index` of task `taskId` (1-based; 0 is a `put`). */
export function objectId(taskId: string, index: number): string {
  return taskId + index.toString(16).padStart(8, "0");
}

/** The process that owns a task or object id (it submitted the task, or put the object). */
export function ownerOf(id: string): string {
  return id.slice(0, OWNER_HEX);
}

/** The task that created an object (a `put` has its own task id, with index 0). */
export function taskOf(objectId: string): string {
  return objectId.slice(0, TASK_HEX);
}
