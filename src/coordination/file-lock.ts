/**
 * FileLock: mutual exclusion between the processes of one machine, released by the kernel the
 * instant its holder's process dies (no stale-lock timeout to guess).
 *
 * Node has no flock(2) and warren ships no native addon, so the lock is a listening Unix socket:
 * - On Linux, an abstract-namespace socket `\0warren-filelock-<sha256(absolute path)>`. Only one
 *   socket can listen on a name (a second `listen` gets EADDRINUSE), the name lives in no file
 *   system, and the kernel frees it when the listening socket is closed: by `release()`, or by
 *   the process's exit, however it dies (SIGKILL included).
 * - A waiter does not poll. It connects to the holder's socket and waits for that connection to
 *   close, which happens when the holder releases (it closes the listener first, then every
 *   connection) or dies (the kernel closes both); then it tries `listen` again. Several waiters
 *   race for the name and the losers connect to the winner. A refused connection means the
 *   holder released between our `listen` and our `connect`: listen again at once (with a short
 *   back-off only if that keeps happening).
 * - Elsewhere (macOS, the BSDs: no abstract namespace) the socket is a file, `<path>.sock`, with
 *   the same protocol. Two differences. (1) `listen` on a path binds (creating the file) before
 *   it listens, so for a moment the file exists and refuses connections; a waiter would take
 *   that for a dead holder's file. So a contender listens on a private temporary path first and
 *   then hard-links the listening socket to `<path>.sock` (link(2) fails with EEXIST if the name
 *   is taken: the atomic step). A file at `<path>.sock` therefore always had a listener, and a
 *   release unlinks it before closing the listener. (2) The kernel does not remove a socket
 *   file when its process dies, so a file that refuses connections is a dead holder's leftover:
 *   the waiter unlinks it and tries again. Checking and unlinking are two steps: two waiters
 *   that find the same dead holder's file at the same moment could, in a window of
 *   microseconds, remove a new holder's file, so we unlink only the very file (inode) that
 *   refused us. One more limit: macOS refuses (rather than delays) connections beyond a full
 *   listen backlog (128 there), so more than that many waiters connecting to a holder too busy
 *   to accept them could take its file for a dead one. The directory must exist, and
 *   `<path>.sock` plus a dozen characters must fit in a socket address (104 bytes on macOS). `WARREN_FILELOCK_SOCKET_FILE=1` selects this
 *   variant on Linux too (the tests use it to exercise it).
 *
 * Keeping the process alive: a holder's listener and its accepted connections are unref'd, so
 * holding a lock never keeps a process from exiting (and exiting releases it). A waiter's
 * connection and timers stay ref'd: a pending `acquire()` keeps the process alive, as any
 * pending I/O does. Node opens its sockets close-on-exec, so child processes do not inherit it.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as nodePath from "node:path";
import { OptionsError, WarrenError } from "../errors";
import { LockTimeoutError, checkAcquirable } from "./errors";

export interface LockOptions {
  /** Seconds to wait for the lock before rejecting with LockTimeoutError; 0 tries once. Default: forever. */
  timeout?: number;
}

const ABSTRACT = process.platform === "linux" && !process.env.WARREN_FILELOCK_SOCKET_FILE;
/** setTimeout's largest delay; a longer wait is cut into pieces of this size. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Validates `timeout` (seconds): undefined or Infinity wait forever. @internal */
export function checkTimeout(where: string, timeout: unknown): number | undefined {
  if (timeout === undefined || timeout === Infinity) return undefined;
  if (typeof timeout !== "number" || !(timeout >= 0)) {
    throw new OptionsError(where, [{ field: "timeout", problem: `must be a number of seconds >= 0 (got ${String(timeout)})` }]);
  }
  return timeout;
}

/** The deadline (epoch ms) for a wait of `timeout` seconds starting now. @internal */
export function deadlineOf(timeout: number | undefined): number {
  return timeout === undefined ? Infinity : Date.now() + timeout * 1000;
}

type WaitOutcome = "released" | "refused" | "timeout" | "again";

export class FileLock {
  /** The lock's absolute path. The file need not exist: it only names the lock. */
  readonly path: string;
  readonly timeout?: number;
  private readonly address: string;
  private server?: net.Server;
  /** Non-Linux: the socket file we linked at `address` while we hold the lock. */
  private linked?: fs.BigIntStats;
  /** Connections of waiters, closed on release to wake them. */
  private readonly waiters = new Set<net.Socket>();
  private acquiring = false;

  constructor(path: string, options: LockOptions = {}) {
    if (typeof path !== "string" || path === "") {
      throw new OptionsError("FileLock", [{ field: "path", problem: "must be a non-empty string" }]);
    }
    this.timeout = checkTimeout("FileLock options", options.timeout);
    this.path = nodePath.resolve(path);
    this.address = ABSTRACT
      ? "\0warren-filelock-" + crypto.createHash("sha256").update(this.path).digest("hex")
      : this.path + ".sock";
  }

  /** Whether this object holds the lock. */
  get isLocked(): boolean {
    return this.server !== undefined;
  }

  /** Waits until this object holds the lock, or rejects with LockTimeoutError after `timeout`. */
  async acquire(): Promise<void> {
    checkAcquirable("FileLock", this.path, this.server !== undefined, this.acquiring);
    this.acquiring = true;
    try {
      const deadline = deadlineOf(this.timeout);
      let spins = 0;
      for (;;) {
        const server = await this.listen();
        if (server) {
          this.hold(server);
          return;
        }
        const outcome = await this.waitForHolder(deadline, spins);
        // A refused connection (the holder just released, or a stale file was removed) is worth
        // another try even past the deadline (so `timeout: 0` still takes a free lock), but not
        // over and over.
        if (outcome === "timeout" || (outcome === "refused" && spins >= 2 && Date.now() >= deadline)) {
          throw new LockTimeoutError("FileLock", this.path, this.timeout ?? Infinity);
        }
        spins = outcome === "refused" ? spins + 1 : 0;
      }
    } finally {
      this.acquiring = false;
    }
  }

  /** Releases the lock: the next waiter (in any process) gets it at once. */
  async release(): Promise<void> {
    const server = this.server;
    if (!server) {
      throw new WarrenError(`FileLock ${JSON.stringify(this.path)} is not held by this FileLock object: release() without a matching acquire()`);
    }
    this.server = undefined;
    if (this.linked) {
      // Unlink before closing, so that a file at `address` always has a listener (see the top).
      const now = statOrUndefined(this.address);
      if (now && sameFile(now, this.linked)) fs.rmSync(this.address, { force: true });
      this.linked = undefined;
    }
    // Closing the listener frees the name at once (the fd closes synchronously); only then wake
    // the waiters, so that their next `listen` finds it free. Nothing here needs awaiting, and
    // nothing that is unref'd is awaited (a process with nothing else to do must not exit in
    // the middle of release()).
    server.close();
    for (const socket of this.waiters) socket.destroy();
    this.waiters.clear();
  }

  /** Tries to take the lock's address: the server if we now hold the lock, undefined if another does. */
  private async listen(): Promise<net.Server | undefined> {
    if (ABSTRACT) return this.listenOn(this.address);
    // Listen privately, then publish the listening socket under the lock's name atomically.
    const temp = `${this.address}.${crypto.randomBytes(5).toString("hex")}`;
    const server = await this.listenOn(temp);
    if (!server) return undefined; // a random name taken: just try again
    try {
      fs.linkSync(temp, this.address);
    } catch (err) {
      server.close();
      fs.rmSync(temp, { force: true });
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return undefined;
      throw new WarrenError(`FileLock ${JSON.stringify(this.path)}: cannot create ${this.address}: ${(err as Error).message}`, { cause: err });
    }
    fs.rmSync(temp, { force: true });
    // Identify our file after the last change to its link count (which changes its ctime).
    this.linked = statOrUndefined(this.address);
    return server;
  }

  private listenOn(address: string): Promise<net.Server | undefined> {
    return new Promise((resolve, reject) => {
      const server = net.createServer();
      const onError = (err: NodeJS.ErrnoException) => {
        server.removeListener("listening", onListening);
        if (err.code === "EADDRINUSE") resolve(undefined);
        else reject(new WarrenError(`FileLock ${JSON.stringify(this.path)}: cannot listen on ${this.describeAddress(address)}: ${err.message}`, { cause: err }));
      };
      const onListening = () => {
        server.removeListener("error", onError);
        resolve(server);
      };
      server.once("error", onError);
      server.once("listening", onListening);
      server.listen(address);
    });
  }

  private hold(server: net.Server): void {
    server.unref();
    server.on("error", () => undefined);
    server.on("connection", (socket) => {
      socket.unref();
      socket.on("error", () => undefined);
      // Read (and discard) so that a waiter that gives up (timeout, death) is noticed and dropped.
      socket.resume();
      this.waiters.add(socket);
      socket.on("close", () => this.waiters.delete(socket));
    });
    this.server = server;
  }

  /**
   * Connects to the holder and resolves when that connection closes ("released"), when it is
   * refused ("refused": the holder just released, or on non-Linux left a stale file, removed
   * here), at the deadline ("timeout"), or when a wait longer than a timer allows ends a piece ("again").
   */
  private waitForHolder(deadline: number, spins: number): Promise<WaitOutcome> {
    return new Promise((resolve, reject) => {
      let done = false;
      let socket: net.Socket | undefined;
      let timer: NodeJS.Timeout | undefined;
      let backoff: NodeJS.Timeout | undefined;
      const finish = (outcome: WaitOutcome | Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearTimeout(backoff);
        socket?.destroy();
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      };
      // The deadline only matters once we are connected, waiting: a Unix-socket connect
      // completes or fails at once.
      const startTimer = () => {
        const remaining = deadline - Date.now();
        if (remaining <= 0) return finish("timeout");
        if (remaining !== Infinity) {
          timer = remaining > MAX_TIMER_MS
            ? setTimeout(() => finish("again"), MAX_TIMER_MS)
            : setTimeout(() => finish("timeout"), remaining);
        }
      };
      const connect = () => {
        const stale = ABSTRACT ? undefined : statOrUndefined(this.address);
        let connected = false;
        let code: string | undefined;
        socket = net.connect(this.address);
        socket.on("connect", () => {
          connected = true;
          socket!.resume();
          startTimer();
        });
        socket.on("error", (err: NodeJS.ErrnoException) => (code = err.code));
        socket.on("close", () => {
          if (done) return;
          if (connected) return finish("released");
          if (!ABSTRACT && code === "ECONNREFUSED") {
            try {
              this.removeStale(stale);
            } catch (err) {
              return finish(err as Error);
            }
          }
          // ECONNREFUSED / ENOENT (released in between), EAGAIN (backlog full), anything else: try again.
          finish("refused");
        });
      };
      // A listen/connect race that keeps losing (a holder releasing and another taking it,
      // over and over) backs off a little, so it never becomes a busy loop.
      const delay = spins < 3 ? 0 : Math.min(2 ** (spins - 3), 50);
      if (delay === 0) connect();
      else backoff = setTimeout(connect, delay);
    });
  }

  /** Non-Linux: unlinks the socket file a dead holder left, if it is still the one that refused us. */
  private removeStale(before: fs.BigIntStats | undefined): void {
    const now = statOrUndefined(this.address);
    if (!now) return; // already gone
    if (!now.isSocket()) {
      throw new WarrenError(`FileLock ${JSON.stringify(this.path)}: ${this.address} exists and is not a socket; FileLock uses that path, remove the file`);
    }
    if (before && sameFile(before, now)) {
      try {
        fs.unlinkSync(this.address);
      } catch {
        // another waiter removed it first
      }
    }
  }

  private describeAddress(address: string): string {
    return address.startsWith("\0") ? `abstract socket @${address.slice(1)}` : address;
  }
}

/** The same file, not just the same inode number (a freed inode's number is soon reused). */
function sameFile(a: fs.BigIntStats, b: fs.BigIntStats): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.ctimeNs === b.ctimeNs && a.birthtimeNs === b.birthtimeNs;
}

function statOrUndefined(path: string): fs.BigIntStats | undefined {
  try {
    return fs.lstatSync(path, { bigint: true });
  } catch {
    return undefined;
  }
}

/** Acquires the FileLock at `path`, runs `fn`, and releases the lock however `fn` ends. */
export async function withFileLock<T>(path: string, fn: () => T | Promise<T>, options?: LockOptions): Promise<T> {
  const lock = new FileLock(path, options);
  await lock.acquire();
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
