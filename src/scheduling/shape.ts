/**
 * Resource demands and shape keys: what a task or actor needs, written as one canonical string
 * ("CPU:1,GPU:1,accelerator_type:V100:0.001") so that equal demands share one queue/routing key.
 * Pure functions. Amounts are exact at Ray's granularity of 0.0001: arithmetic runs on integer
 * units of 1e-4 (BigInt, so memory in bytes never loses precision), never on floats.
 */
import type { ActorOptions, TaskOptions } from "../options";

/** Resource name -> amount. */
export type Resources = Record<string, number>;

/** The smallest resource amount, like Ray's MIN_RESOURCE_GRANULARITY. */
export const RESOURCE_GRANULARITY = 0.0001;
/** The shape key of the empty demand (a task with numCpus: 0 and nothing else). */
export const EMPTY_SHAPE = "none";

const SCALE = 10_000n;

/** An amount in integer units of 1e-4, rounded to the nearest unit. */
function toUnits(x: number): bigint {
  if (typeof x !== "number" || !Number.isFinite(x)) {
    throw new RangeError(`resource amount must be a finite number (got ${String(x)})`);
  }
  const whole = Math.trunc(x); // x - whole is exact, so huge byte counts stay exact
  return BigInt(whole) * SCALE + BigInt(Math.round((x - whole) * 10_000));
}

/** Decimal text of an amount in units: at most 4 decimals, no trailing zeros, no exponent. */
function formatUnits(u: bigint): string {
  const neg = u < 0n;
  const a = neg ? -u : u;
  const frac = a % SCALE;
  const text = frac === 0n ? `${a / SCALE}` : `${a / SCALE}.${String(frac).padStart(4, "0").replace(/0+$/, "")}`;
  return neg ? `-${text}` : text;
}

/** The double nearest to the decimal value of `u` units. */
function fromUnits(u: bigint): number {
  const n = Number(u);
  // Division of an exact integer by 1e4 is correctly rounded; beyond 2^53 parse the decimal.
  return Number.isSafeInteger(n) ? n / 10_000 + 0 : Number(formatUnits(u));
}

/** `x` rounded to 4 decimal places, exactly as the scheduler will count it. */
export function roundAmount(x: number): number {
  return fromUnits(toUnits(x));
}

/** Own entries only: a resource named "constructor" must not read Object.prototype. */
function own(r: Readonly<Resources>, name: string): number {
  return Object.prototype.hasOwnProperty.call(r, name) ? r[name] : 0;
}

function toUnitMap(r: Readonly<Resources>): Map<string, bigint> {
  const m = new Map<string, bigint>();
  for (const [name, amount] of Object.entries(r)) m.set(name, toUnits(amount));
  return m;
}

/** Built with fromEntries so that a name like "__proto__" stays an own key. */
function fromUnitMap(m: Map<string, bigint>, dropZeros: boolean): Resources {
  const entries: [string, number][] = [];
  for (const [name, u] of m) if (!dropZeros || u !== 0n) entries.push([name, fromUnits(u)]);
  return Object.fromEntries(entries);
}

function demandUnits(
  opts: Pick<TaskOptions, "numGpus" | "memory" | "resources" | "acceleratorType">,
  cpus: number,
): Map<string, bigint> {
  const m = toUnitMap(opts.resources ?? {});
  m.set("CPU", toUnits(cpus));
  m.set("GPU", toUnits(opts.numGpus ?? 0));
  m.set("memory", toUnits(opts.memory ?? 0));
  // Like Ray: the accelerator constraint is set (not added) to 0.001 of the node's marker resource.
  if (opts.acceleratorType !== undefined) m.set(`accelerator_type:${opts.acceleratorType}`, 10n);
  return m;
}

/** What a task needs while it runs: CPU defaults to 1; zero amounts are left out. */
export function taskDemand(opts: TaskOptions): Resources {
  return fromUnitMap(demandUnits(opts, opts.numCpus ?? 1), true);
}

/**
 * What an actor needs to be placed, and what it holds while alive. With numCpus unset it needs
 * 1 CPU to place but holds 0 (so idle actors do not pin cores); with numCpus set both use it.
 * Every other resource is held for the actor's whole life.
 */
export function actorDemand(opts: ActorOptions): { placement: Resources; held: Resources } {
  return {
    placement: fromUnitMap(demandUnits(opts, opts.numCpus ?? 1), true),
    held: fromUnitMap(demandUnits(opts, opts.numCpus ?? 0), true),
  };
}

/**
 * The canonical key of a demand: `name:amount` sorted by name (code-unit order, not locale),
 * joined by ','. Zero amounts are left out, so `{}` and `{ CPU: 0 }` are both "none".
 */
export function shapeKey(demand: Readonly<Resources>): string {
  const parts: string[] = [];
  for (const name of Object.keys(demand).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    const u = toUnits(demand[name]);
    if (u !== 0n) parts.push(`${name}:${formatUnits(u)}`);
  }
  return parts.length === 0 ? EMPTY_SHAPE : parts.join(",");
}

const AMOUNT_TEXT = /^-?\d+(\.\d{1,4})?$/;

/** The inverse of shapeKey. Names may contain ':' (`accelerator_type:V100`), so split on the last one. */
export function parseShape(key: string): Resources {
  if (key === EMPTY_SHAPE) return {};
  const entries: [string, number][] = [];
  const seen = new Set<string>();
  for (const part of key.split(",")) {
    const colon = part.lastIndexOf(":");
    const name = part.slice(0, colon);
    const amount = part.slice(colon + 1);
    if (colon <= 0 || !AMOUNT_TEXT.test(amount) || seen.has(name)) {
      throw new Error(`invalid shape key ${JSON.stringify(key)}: bad entry ${JSON.stringify(part)}`);
    }
    seen.add(name);
    entries.push([name, Number(amount)]);
  }
  return Object.fromEntries(entries);
}

/** Whether every positive amount in `demand` is available (a missing resource counts as 0). */
export function fits(demand: Readonly<Resources>, available: Readonly<Resources>): boolean {
  for (const [name, amount] of Object.entries(demand)) {
    const need = toUnits(amount);
    if (need > 0n && toUnits(own(available, name)) < need) return false;
  }
  return true;
}

function combine(available: Readonly<Resources>, demand: Readonly<Resources>, sign: bigint): Resources {
  const m = toUnitMap(available);
  for (const [name, amount] of Object.entries(demand)) {
    const u = toUnits(amount);
    if (u !== 0n) m.set(name, (m.get(name) ?? 0n) + sign * u);
  }
  return fromUnitMap(m, false);
}

/**
 * `available` minus `demand`, as a new object. Keys of `available` are kept even at 0. The
 * result may go negative (a task re-acquiring its CPU after a nested get oversubscribes, like
 * Ray); check `fits` first where that must not happen.
 */
export function subtract(available: Readonly<Resources>, demand: Readonly<Resources>): Resources {
  return combine(available, demand, -1n);
}

/** `available` plus `demand` (resources given back), as a new object. */
export function add(available: Readonly<Resources>, demand: Readonly<Resources>): Resources {
  return combine(available, demand, 1n);
}

/** A demand compiled for a Ledger: its positive amounts in units. */
export type Demand = ReadonlyArray<readonly [string, bigint]>;

export function compileDemand(demand: Readonly<Resources>): Demand {
  return Object.entries(demand).map(([name, amount]) => [name, toUnits(amount)] as const).filter(([, u]) => u > 0n);
}

/**
 * Free resources kept in units, for a node's scheduler: every admission and release on the hot
 * path is a few integer operations on demands compiled once per shape, not a conversion of whole
 * objects.
 */
export class Ledger {
  private readonly free: Map<string, bigint>;

  constructor(total: Readonly<Resources> | Map<string, bigint>) {
    this.free = total instanceof Map ? new Map(total) : toUnitMap(total);
  }

  fits(d: Demand): boolean {
    for (const [name, u] of d) if ((this.free.get(name) ?? 0n) < u) return false;
    return true;
  }

  /** Takes a demand (it may go negative: a task taking its CPU back after a nested get, like Ray). */
  take(d: Demand): void {
    for (const [name, u] of d) this.free.set(name, (this.free.get(name) ?? 0n) - u);
  }

  give(d: Demand): void {
    for (const [name, u] of d) this.free.set(name, (this.free.get(name) ?? 0n) + u);
  }

  /** How many of `d` fit now (`cap` for a demand of nothing). */
  count(d: Demand, cap: number): number {
    if (d.length === 0) return cap;
    let n = cap;
    for (const [name, u] of d) {
      const free = this.free.get(name) ?? 0n;
      n = Math.min(n, free <= 0n ? 0 : Number(free / u));
    }
    return n;
  }

  clone(): Ledger {
    return new Ledger(this.free);
  }

  /** As a plain object (for reports). */
  toResources(): Resources {
    return fromUnitMap(this.free, false);
  }
}
