/**
 * node logs: the files of this node's processes in its session folder (core/log-files.ts):
 * `node.log`, the daemon's own output, and `logs/worker-<id>-<pid>.out`, one per worker. It opens
 * each worker's file, reads a dead worker's last lines (for WorkerCrashedError, and for its job's
 * driver: what a worker printed just before it died was never forwarded), and answers `logs.read`
 * requests (`warren logs`, from any machine) on the node's control queue.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as v8 from "node:v8";
import type * as amqp from "amqplib";
import { encodeError } from "../serialization";
import { type Rotation, type Source, parseMarker, withBackups, workerLogFile } from "../core/log-files";
import { LATEST_SESSION, clusterDir, isPrivateCluster } from "../core/paths";
import type { Topology } from "../transport";
import type { LogFileLines, LogPosition, LogsRequest } from "../wire/head";
import type { WorkerDeath } from "../wire/ipc";
import { Kind, type RpcReply } from "../wire/kinds";

/** How many of a dead worker's last lines its WorkerCrashedError shows. */
const CRASH_LINES = 20;
/** The most one `--follow` answer reads of one file. */
const FOLLOW_BYTES = 4 * 1024 * 1024;
const WORKER_FILE = /^worker-[0-9a-f]+-(\d+)\.out$/;

interface Line {
  text: string;
  /** Unknown for lines read from the middle of a file before its first marker. */
  source?: Source;
}

export interface NodeLogsDeps {
  sessionDir: string;
  rotation: Rotation;
  topo: Topology;
  /** The node's channel now. */
  ch(): amqp.Channel;
}

export class NodeLogs {
  readonly dir: string;

  constructor(private readonly deps: NodeLogsDeps) {
    this.dir = path.join(deps.sessionDir, "logs");
  }

  get rotation(): Rotation {
    return this.deps.rotation;
  }

  /** The daemon's own log (its parent opened it as the daemon's stdout and stderr). */
  get nodeLog(): string {
    return path.join(this.deps.sessionDir, "node.log");
  }

  /** Opens a new worker's file; `named(pid)` gives it its name once the worker is forked. */
  openWorker(workerId: string): { fd: number; named(pid: number): string } {
    const opened = path.join(this.dir, `worker-${workerId}.out`);
    const fd = fs.openSync(opened, "a");
    return {
      fd,
      named: (pid) => {
        const file = workerLogFile(this.dir, workerId, pid);
        fs.renameSync(opened, file);
        console.log(`worker ${workerId} pid=${pid} started; its output: ${file}`);
        return file;
      },
    };
  }

  /** A worker exited: how, with its last lines, which also go to the drivers of the jobs whose tasks printed them. */
  died(file: string, pid: number, how: string): WorkerDeath {
    console.log(`worker pid=${pid} exited (${how})`);
    const { lines } = tail(withBackups(file, this.deps.rotation.backups), CRASH_LINES, () => true);
    for (const run of runs(lines)) {
      const s = run[0].source;
      if (!s?.job) continue;
      const entry = { name: s.name ?? "", pid, stream: s.stream, text: run.map((l) => `${l.text}\n`).join(""), crash: true };
      this.deps.ch().publish(this.deps.topo.logs, s.job, v8.serialize(entry), { type: Kind.log });
    }
    const kept = this.deps.sessionDir === clusterDir(this.deps.topo.cluster) && isPrivateCluster(this.deps.topo.cluster)
      ? path.join(LATEST_SESSION, "logs", path.basename(file))
      : undefined;
    return { pid, how, log: file, tail: lines.map((l) => l.text), kept };
  }

  /** Answers a `logs.read` request. */
  serve(msg: amqp.ConsumeMessage): void {
    let reply: RpcReply;
    try {
      reply = { ok: true, value: this.read(v8.deserialize(msg.content)) };
    } catch (err) {
      reply = { ok: false, error: encodeError(err) };
    }
    this.deps.ch().publish("", msg.properties.replyTo, v8.serialize(reply), { type: Kind.reply, correlationId: msg.properties.correlationId });
  }

  private read(r: LogsRequest): LogFileLines[] {
    const keep = (s: Source) => (!r.task || s.task === r.task) && (!r.actor || s.actor === r.actor);
    const files: Array<{ file: string; pid: number; first: Source }> = [];
    if (!r.task && !r.actor) files.push({ file: this.nodeLog, pid: process.pid, first: { stream: "stdout", name: "node" } });
    const workers = fs.readdirSync(this.dir).flatMap((name) => {
      const m = WORKER_FILE.exec(name);
      return m ? [{ file: path.join(this.dir, name), pid: Number(m[1]), first: { stream: "stdout" as const } }] : [];
    });
    const mtime = (f: string) => fs.statSync(f, { throwIfNoEntry: false })?.mtimeMs ?? 0;
    files.push(...workers.sort((a, b) => mtime(a.file) - mtime(b.file)));
    return files.flatMap(({ file, pid, first }) => {
      if (!fs.existsSync(file)) return []; // gone since it was listed
      const read = r.follow
        ? follow(file, this.deps.rotation.backups, r.follow[path.basename(file)] ?? { offset: 0, source: first })
        : tail(withBackups(file, this.deps.rotation.backups), r.tail, keep, first);
      return [{
        file: path.basename(file), pid, offset: read.offset, source: read.source,
        lines: read.lines.filter((l) => l.source && keep(l.source)).map((l) => `(${l.source?.name ? `${l.source.name} ` : ""}pid=${pid}) ${l.text}`),
      }];
    });
  }
}

/** The lines of `text`, markers read and dropped; `source` is the one in force at its start. */
function parse(text: string, source?: Source): { lines: Line[]; source?: Source } {
  const lines: Line[] = [];
  const parts = text.split("\n");
  if (parts[parts.length - 1] === "") parts.pop();
  for (const part of parts) {
    const marker = parseMarker(part);
    if (marker) source = marker;
    else lines.push({ text: part, source });
  }
  return { lines, source };
}

/** Bytes [from, to) of `files` read as one stream. */
function readRange(files: string[], sizes: number[], from: number, to: number): string {
  const chunks: Buffer[] = [];
  let at = 0;
  files.forEach((file, i) => {
    const start = Math.max(from, at);
    const end = Math.min(to, at + sizes[i]);
    if (end > start) {
      const buf = Buffer.alloc(end - start);
      const fd = fs.openSync(file, "r");
      try {
        fs.readSync(fd, buf, 0, buf.length, start - at);
      } finally {
        fs.closeSync(fd);
      }
      chunks.push(buf);
    }
    at += sizes[i];
  });
  return Buffer.concat(chunks).toString();
}

/** Lines read from a file, the offset after them in the file, and the source there. */
interface Read {
  lines: Line[];
  offset: number;
  source?: Source;
}

/**
 * The last `want` lines that `keep` keeps of `files` (oldest first, one stream), reading back from
 * the end twice as far each time until they are found with their sources, or the start is reached.
 */
function tail(files: string[], want: number, keep: (s: Source) => boolean, first: Source = { stream: "stdout" }): Read {
  const sizes = files.map((f) => fs.statSync(f, { throwIfNoEntry: false })?.size ?? 0);
  const total = sizes.reduce((a, b) => a + b, 0);
  for (let span = 64 * 1024; ; span *= 2) {
    const from = Math.max(0, total - span);
    let text = readRange(files, sizes, from, total);
    if (from > 0) text = text.slice(text.indexOf("\n") + 1); // a line cut in two
    const { lines, source } = parse(text, from === 0 ? first : undefined);
    const kept = lines.filter((l) => l.source && keep(l.source));
    if (kept.length >= want || from === 0) return { lines: kept.slice(-want), offset: sizes[sizes.length - 1], source };
  }
}

/** What is new in `file` since `pos` (from its newest backup first if it was rotated since), up to FOLLOW_BYTES. */
function follow(file: string, backups: number, pos: LogPosition): Read {
  const size = fs.statSync(file).size;
  let text = "";
  let offset = pos.offset;
  if (size < offset) {
    const backup = `${file}.1`;
    if (backups > 0 && fs.existsSync(backup)) text = readRange([backup], [fs.statSync(backup).size], offset, Infinity);
    offset = 0;
  }
  const to = Math.min(size, offset + FOLLOW_BYTES);
  let fresh = readRange([file], [size], offset, to);
  if (to < size) fresh = fresh.slice(0, fresh.lastIndexOf("\n") + 1); // the rest next time
  const { lines, source } = parse(text + fresh, pos.source);
  return { lines, source, offset: offset + Buffer.byteLength(fresh) };
}

/** Consecutive lines of one source. */
function runs(lines: Line[]): Line[][] {
  const out: Line[][] = [];
  for (const l of lines) {
    const last = out[out.length - 1];
    if (last && last[0].source === l.source) last.push(l);
    else out.push([l]);
  }
  return out;
}

/** A private cluster's session folder at shutdown: its logs stay (Ray's session_latest), the rest goes. */
export function keepLogsOnly(sessionDir: string): void {
  for (const name of fs.readdirSync(sessionDir)) {
    if (name !== "logs" && !name.startsWith("node.log")) fs.rmSync(path.join(sessionDir, name), { recursive: true, force: true });
  }
}
