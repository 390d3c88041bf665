/**
 * core: every default of the per-process runtime, each documented here and set nowhere else
 * (as Temporal's worker-options.ts does for its worker).
 */
export const CORE_DEFAULTS = {
  /**
   * Values up to this size travel inline in messages; larger ones go to the node's LMDB store.
   * Measured here (a task returning N bytes, round trip): inline wins up to 128 KB, the store
   * from 512 KB. Ray's 100 KiB sits just below that crossover and keeps large bodies out of the
   * broker's memory.
   * @default 102400 (100 KiB)
   */
  inlineMax: 100 * 1024,
  /**
   * Ended tasks whose final state is kept for state queries, oldest dropped first.
   * @default 10000
   */
  endedKept: 10_000,
  /**
   * Finished tasks whose message is kept to make their stored objects again should the node
   * holding them die (lineage), oldest dropped first.
   * @default 10000
   */
  lineageKept: 10_000,
  /**
   * Actors known dead, with why, so calls to them fail without being sent.
   * @default 10000
   */
  deadActorsKept: 10_000,
  /**
   * The size of a chunk of an object fetched from another node through the broker (the
   * fallback of the direct transfer): well under the broker's
   * max_message_size (16 MiB from RabbitMQ 4.0).
   * @default 8388608 (8 MiB)
   */
  fetchChunk: 8 * 1024 * 1024,
  /**
   * Chunk requests of one fetch in flight at once.
   * @default 4
   */
  fetchWindow: 4,
  /**
   * A direct transfer from another node's object port (core/transfer.ts) that receives nothing
   * for this long is given up, and the object is fetched through the broker instead.
   * @default 30000
   */
  transferIdleMs: 30_000,
  /**
   * At most this many rows per process in a state answer (Ray's state API also caps).
   * @default 10000
   */
  stateRows: 10_000,
  /**
   * How long task events wait in a process before they go to the head in one message (Ray's
   * RAY_task_events_report_interval_ms), and how many changed tasks send them sooner.
   * (10,000 rows of either kind stay well under 16 MiB, RabbitMQ 4's max_message_size; more per batch means
   * fewer rows in all, as a task submitted and ended within one batch is one row.)
   * @default 1000 ms, 10000 tasks
   */
  taskEventsMs: 1000,
  taskEventsBatch: 10_000,
  /**
   * A worker that reported holding borrowed refs as a call ended runs a full GC this long after
   * (once, however many calls report meanwhile), and again at doubling intervals up to
   * borrowGcMaxMs while it still holds some, so that refs its code dropped are found collected
   * and released to their owners even if nothing else makes it collect. Workers run with
   * --expose-gc; elsewhere this does nothing.
   * @default 1000
   */
  borrowGcMs: 1000,
  /** @default 60000 */
  borrowGcMaxMs: 60_000,
} as const;
