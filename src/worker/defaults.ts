/**
 * worker: every default of the worker process, each documented here and set nowhere else (as
 * Temporal's worker-options.ts does). lease.ts says how a lease uses its window.
 */
export const WORKER_DEFAULTS = {
  /**
   * A lease that has had no delivery for this long stops consuming and gives its slot back.
   * @default 10
   */
  leaseIdleMs: 10,
  /**
   * Deliveries a lease holds at once while its tasks are short (their moving average is under
   * `fastAverageMs`); over `slowAverageMs` it holds one. What one lease holds is then about
   * fastPrefetch x slowAverageMs of work at most.
   * @default 32
   */
  fastPrefetch: 32,
  /**
   * leaseIdleMs and fastPrefetch in durable mode. There every consume, cancel and ack of a lease
   * is a replicated operation of a quorum queue, and deliveries come later on a loaded cluster:
   * a lease that waits longer before it ends, and holds more, churns less and acks in bigger
   * batches (pipelined tasks on the 3-node cluster of `npm run bench -- --durable`: about 2,100/s
   * with the default mode's values, 4,000/s with these).
   * @default { leaseIdleMs: 50, fastPrefetch: 128 }
   */
  durableLease: { leaseIdleMs: 50, fastPrefetch: 128 },
  /**
   * In durable mode, the latest results a worker keeps to send again to an owner back from a
   * broker outage (recent-results.ts): at most this many, and this many bytes of inline values.
   * @default { count: 10000, bytes: 32 MiB }
   */
  recentResults: { count: 10_000, bytes: 32 * 1024 * 1024 },
  /** @default 0.5 */
  fastAverageMs: 0.5,
  /** @default 1 */
  slowAverageMs: 1,
  /**
   * The weight of each new run in the moving average of a lease's task times.
   * @default 0.1
   */
  runWeight: 0.1,
  /**
   * A task still running after this long suspends its lease (gives back what it holds unstarted).
   * @default 20
   */
  slowTaskMs: 20,
  /**
   * An actor with maxTaskRetries 0 acks its calls up to this long after they arrive (and half a
   * window at a time), so a stream of calls costs few acks.
   * @default 10
   */
  actorAckDelayMs: 10,
  /**
   * The results of the latest calls from each caller an actor keeps, so that a call sent again
   * after a broker outage is answered again, not run twice (exactly once within this window).
   * @default 1024
   */
  actorResultsKept: 1024,
  /**
   * The channels a host process's shared actors' mailboxes are consumed on, each actor on one of
   * them (mailbox-channel.ts): a connection allows 2,047 channels, each a process in the broker.
   * @default 8
   */
  sharedMailboxChannels: 8,
  /**
   * The calls each shared actor may have delivered and unacked (an actor with a process of its own
   * has its maxConcurrency, at least 100 and at most 1,000).
   * @default 100
   */
  sharedPrefetch: 100,
  /**
   * How often at most a worker tells its node what it ran (worker/tally.ts), for the node's metrics.
   * @default 1000
   */
  tallyMs: 1000,
} as const;
