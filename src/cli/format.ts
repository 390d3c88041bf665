/** Text the CLI prints: headers, aligned tables, sizes. Pure functions (resources: scheduling/text.ts). */
import { amount, gib } from "../scheduling/text";

/** `======== title: 2024-05-01 12:00:00 ========`, like Ray's CLI. */
export function banner(title: string, now = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  const stamp = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())} ${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}`;
  return `======== ${title}: ${stamp} ========`;
}

/** A section title with its rule line. */
export function section(title: string): string {
  return `${title}\n${"-".repeat(60)}`;
}

/** Bytes in the largest unit that keeps them >= 1: `512B`, `1.50KiB`, `3.20MiB`, `1.00GiB`. */
export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n}B` : `${v.toFixed(2)}${units[i]}`;
}

/** One `Usage:` line: `1.0/2.0 CPU`, `0.00GiB/10.56GiB memory`. */
export function usageLine(name: string, used: number, total: number): string {
  const isBytes = name === "memory" || name === "object_store_memory";
  return isBytes ? `${gib(used)}/${gib(total)} ${name}` : `${amount(used)}/${amount(total)} ${name}`;
}

/** A cell of a table: objects as compact JSON, null and undefined as empty. */
export function cell(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/**
 * Rows as an aligned table with upper-case headers and a row index, like `ray list`: columns are
 * the keys of the rows, in the order they first appear.
 */
export function table(rows: Record<string, unknown>[], columns?: string[]): string {
  const cols = columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const head = ["", ...cols.map((c) => c.toUpperCase())];
  const body = rows.map((r, i) => [String(i), ...cols.map((c) => cell(r[c]))]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(head), ...body.map(line)].join("\n");
}

/** `key: value` lines. */
export function stats(entries: Record<string, unknown>): string {
  return Object.entries(entries).map(([k, v]) => `${k}: ${cell(v)}`).join("\n");
}

/** A broker address with its password hidden. */
export { redactAddress } from "../address";
