/**
 * core: the log files of a node's processes (the `logs` of Ray's session folders). A node daemon and each of
 * its workers write their own stdout and stderr to one file their parent opened for appending (so
 * what is written before this module takes over, or by V8 itself on a fatal error, lands there
 * too). The process rotates it at a size limit by copy and truncate: the file keeps its name and
 * the process its descriptor. A worker writes a marker line before the output of each new source
 * (stream, job, task or actor, and the name its driver prints), so a reader attributes every line
 * as the driver's console does, `(name pid=N)`, and finds one task's or actor's lines.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { WarrenError } from "../errors";
import type { LogSource } from "../wire/head";

export interface Rotation {
  /** A file past this size is rotated (after the write that passed it). */
  maxBytes: number;
  /** How many rotated files are kept beside it: `.1` (the newest) to `.N`. */
  backups: number;
}

export const ROTATION_DEFAULTS: Rotation = { maxBytes: 16 * 1024 * 1024, backups: 5 };

/** The rotation set by WARREN_LOG_MAX_BYTES and WARREN_LOG_BACKUPS, each checked, else the defaults. */
export function rotationFromEnv(env: NodeJS.ProcessEnv = process.env): Rotation {
  return {
    maxBytes: whole(env, "WARREN_LOG_MAX_BYTES", ROTATION_DEFAULTS.maxBytes, 1024),
    backups: whole(env, "WARREN_LOG_BACKUPS", ROTATION_DEFAULTS.backups, 0),
  };
}

function whole(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number): number {
  const text = env[name];
  if (text === undefined || text.trim() === "") return fallback;
  if (!/^\d+$/.test(text.trim()) || Number(text) < min || !Number.isSafeInteger(Number(text))) {
    throw new WarrenError(`${name} must be a whole number of at least ${min} (got ${JSON.stringify(text)}); unset it for the default, ${fallback}`);
  }
  return Number(text);
}

/** Shifts `file.1`... up by one (the oldest beyond `backups` goes), copies `file` to `file.1`, and empties it. */
export function rotate(file: string, backups: number): void {
  for (let i = backups - 1; i >= 1; i--) {
    if (fs.existsSync(`${file}.${i}`)) fs.renameSync(`${file}.${i}`, `${file}.${i + 1}`);
  }
  if (backups > 0) fs.copyFileSync(file, `${file}.1`);
  fs.truncateSync(file, 0);
}

/** A file and its backups, oldest first: one stream of output. */
export function withBackups(file: string, backups: number): string[] {
  const rotated = Array.from({ length: backups }, (_, i) => `${file}.${backups - i}`).filter((f) => fs.existsSync(f));
  return [...rotated, file];
}

/** A worker's log file (Ray's `worker-<id>-<pid>.out`). */
export function workerLogFile(dir: string, workerId: string, pid: number): string {
  return path.join(dir, `worker-${workerId}-${pid}.out`);
}

/** Where the lines after a marker come from. */
export type Source = LogSource;
export type Stream = Source["stream"];

const MARK = ":warren:";

export function markerLine(s: Source): string {
  return `${MARK}${JSON.stringify(s)}\n`;
}

/** The source a line announces, if it is a marker. */
export function parseMarker(line: string): Source | undefined {
  if (!line.startsWith(MARK)) return undefined;
  try {
    return JSON.parse(line.slice(MARK.length)) as Source;
  } catch {
    return undefined;
  }
}

/**
 * Takes over this process's stdout and stderr writes: `file`, where they go, is rotated at
 * `limits` (unless they go to a terminal or a pipe). `before(stream, chunk, fresh)` may return a marker line to write first (`fresh`: the
 * file is new or was just rotated, so its readers need the source again).
 */
export function takeOverOutput(file: string, limits: Rotation, before?: (stream: Stream, chunk: unknown, fresh: boolean) => string | undefined): void {
  const toFile = fs.fstatSync(1).isFile(); // a terminal or pipe is not ours to rotate or mark
  let size = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  let atLineStart = true;
  for (const stream of ["stdout", "stderr"] as const) {
    const target = process[stream];
    const write = target.write.bind(target) as (...a: unknown[]) => boolean;
    target.write = ((chunk: unknown, ...rest: unknown[]) => {
      const mark = before?.(stream, chunk, size === 0);
      if (mark && toFile) {
        const line = atLineStart ? mark : `\n${mark}`;
        write(line);
        size += Buffer.byteLength(line);
      }
      const done = write(chunk, ...rest);
      const bytes = typeof chunk === "string" ? Buffer.byteLength(chunk) : (chunk as Uint8Array).byteLength;
      if (bytes > 0) atLineStart = typeof chunk === "string" ? chunk.endsWith("\n") : (chunk as Uint8Array)[bytes - 1] === 10;
      size += bytes;
      if (toFile && size > limits.maxBytes) {
        rotate(file, limits.backups);
        size = 0;
        atLineStart = true;
      }
      return done;
    }) as typeof target.write;
  }
}
