/**
 * Resources as people read them, in `warren status`, `warren start` and the driver's warnings
 * about demands no node can meet. Pure functions.
 */
import type { Resources } from "./shape";

const GiB = 2 ** 30;

/** Bytes as GiB with two decimals: `10.56GiB`. */
export function gib(bytes: number): string {
  return `${(bytes / GiB).toFixed(2)}GiB`;
}

/** A resource amount with at least one decimal, like Ray's `0.0/2.0 CPU`. */
export function amount(x: number): string {
  return Number.isInteger(x) ? x.toFixed(1) : String(Number(x.toFixed(4)));
}

/** The order `warren status` lists resources in: CPU, GPU, memory, object store, then the rest by name. */
export function resourceOrder(names: Iterable<string>): string[] {
  const first = ["CPU", "GPU", "memory", "object_store_memory"];
  const all = [...new Set(names)].filter((n) => !n.startsWith("node:"));
  return [...first.filter((n) => all.includes(n)), ...all.filter((n) => !first.includes(n)).sort()];
}

/** A demand as Ray prints it: `{'CPU': 1, 'Custom1': 1}`. */
export function demandDict(r: Resources): string {
  return `{${Object.entries(r).map(([k, v]) => `'${k}': ${v}`).join(", ")}}`;
}

/** A node's resources in one line: `CPU 2.0, memory 10.56GiB, Custom1 1.0`. */
export function describeResources(r: Resources): string {
  return resourceOrder(Object.keys(r))
    .map((k) => (k === "memory" || k === "object_store_memory" ? `${k} ${gib(r[k])}` : `${k} ${amount(r[k])}`))
    .join(", ");
}
