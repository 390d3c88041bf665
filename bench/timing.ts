/**
 * The benchmark's timing (Ray's `timeit`): warm-up, timed rounds, and a case's rounds alternating
 * with its limit's; the mean and std of rounds; the deadline that stops a case that runs too long.
 * Owns `Running` (what a case's setup hands the timer) and `Settings` (--warmup, --rounds,
 * --seconds). Knows nothing of warren or of what a case measures.
 */
import { performance } from "node:perf_hooks";

export interface Running {
  /**
   * One operation. One that resolves to a number has timed itself: that many seconds count for
   * it instead of its wall time (a case whose op also prepares what it measures).
   */
  op: () => unknown;
  /** Units one op counts for (1000 for a batch of 1000 calls, gigabytes for a large put). */
  multiplier: number;
  teardown?: () => Promise<void> | void;
  /** Calls the warm-up makes at least, however long they take. */
  minWarmupOps?: number;
  /** A line the report prints under the table, read after the rounds (what else the case measured). */
  note?: () => string | undefined;
}

export function tick(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

export interface Settings {
  warmup: number;
  rounds: number;
  seconds: number;
}

export interface Stats {
  mean: number;
  std: number;
  rounds: number[];
}

/**
 * Ray's `timeit`: calls `op` for `warmup` seconds (and at least `minWarmupOps` times), takes a
 * step of a tenth of the warm-up's count (at least 1), then runs `rounds` rounds, each calling
 * steps of `op` until at least `seconds` passed; a round's figure is multiplier * calls / elapsed.
 * Mean and population std, like numpy.
 *
 * With `paired` (the case's limit), a round of the limit runs before each of the case's rounds, so
 * that the ratio compares the two under the same conditions: on a shared 2-CPU machine the raw
 * round trip itself drifts by 20-30% within minutes.
 */
export async function timeit(run: Running, s: Settings, abort: { aborted: boolean }, paired?: Running): Promise<{ stats: Stats; paired?: Stats }> {
  const check = () => {
    if (abort.aborted) throw new Error("aborted");
  };
  const warm = async (r: Running): Promise<number> => {
    const start = performance.now();
    let count = 0;
    do {
      await r.op();
      await tick();
      check();
      count++;
    } while (performance.now() - start < s.warmup * 1000 || count < (r.minWarmupOps ?? 1));
    return Math.floor(count / 10) + 1;
  };
  const round = async (r: Running, step: number): Promise<number> => {
    const start = performance.now();
    let count = 0;
    let selfTimed = 0;
    while (performance.now() - start < s.seconds * 1000) {
      for (let i = 0; i < step; i++) {
        const took = await r.op();
        if (typeof took === "number") selfTimed += took;
        await tick();
        check();
      }
      count += step;
    }
    return (r.multiplier * count) / (selfTimed || (performance.now() - start) / 1000);
  };
  const pairedStep = paired && (await warm(paired));
  const step = await warm(run);
  const rounds: number[] = [];
  const pairedRounds: number[] = [];
  for (let r = 0; r < s.rounds; r++) {
    if (paired) pairedRounds.push(await round(paired, pairedStep!));
    rounds.push(await round(run, step));
  }
  return { stats: statsOf(rounds), paired: paired && statsOf(pairedRounds) };
}

function statsOf(rounds: number[]): Stats {
  const mean = rounds.reduce((a, b) => a + b, 0) / rounds.length;
  const std = Math.sqrt(rounds.reduce((a, b) => a + (b - mean) ** 2, 0) / rounds.length);
  return { mean, std, rounds };
}

/** Rejects after `seconds` (and sets `abort.aborted` so the loop behind `p` stops too). */
export function deadline<T>(p: Promise<T>, seconds: number, abort: { aborted: boolean }, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => {
        abort.aborted = true;
        reject(new Error(`${what} did not finish within ${seconds} s`));
      }, seconds * 1000);
    }),
  ]).finally(() => clearTimeout(timer));
}
