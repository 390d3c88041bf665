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
 *   the same protocol. The kernel does not remove a socket file when its process dies, so a
 *   file whose connect is refused is a dead holder's leftover: unlink it and listen again. That
 *   check and the unlink are two steps, so two waiters that find the same stale file at the
 *   same moment could, in a window of microseconds, remove a fresh holder's file; we narrow it
 *   by unlinking only the very file (inode) that refused us. Its directory must exist, and its
 *   path must fit in a socket address (104 bytes on macOS).
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
import { LockTimeoutError } from "./errors";

export interface LockOptions {
  /** Seconds to wait for the lock before rejecting with LockTimeoutError; 0 tries once. Default: forever. */
  timeout?: number;
}

const ABSTRACT = process.platform === "linux";
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
    if (this.server) {
      throw new WarrenError(`FileLock ${JSON.stringify(this.path)} is already held by this FileLock object: release() it first (a FileLock is not reentrant)`);
    }
    if (this.acquiring) {
      throw new WarrenError(`FileLock ${JSON.stringify(this.path)}: acquire() is already pending on this FileLock object; await it (or use a second FileLock)`);
    }
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
        if (outcome === "timeout") throw new LockTimeoutError("FileLock", this.path, this.timeout ?? Infinity);
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
    // Closing the listener frees the name at once (the fd closes synchronously); only then wake
    // the waiters, so that their next `listen` finds it free. Nothing here needs awaiting, and
    // nothing that is unref'd is awaited (a process with nothing else to do must not exit in
    // the middle of release()).
    server.close();
    for (const socket of this.waiters) socket.destroy();
    this.waiters.clear();
  }

  /** Tries to listen on the lock's address: the server if we now hold the lock, undefined if another does. */
  private listen(): Promise<net.Server | undefined> {
    return new Promise((resolve, reject) => {
      const server = net.createServer();
      const onError = (err: NodeJS.ErrnoException) => {
        server.removeListener("listening", onListening);
        if (err.code === "EADDRINUSE") resolve(undefined);
        else reject(new WarrenError(`FileLock ${JSON.stringify(this.path)}: cannot listen on ${this.describeAddress()}: ${err.message}`, { cause: err }));
      };
      const onListening = () => {
        server.removeListener("error", onError);
        resolve(server);
      };
      server.once("error", onError);
      server.once("listening", onListening);
      server.listen(this.address);
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
      const remaining = deadline - Date.now();
      if (remaining <= 0) return finish("timeout");
      if (remaining !== Infinity) {
        timer = remaining > MAX_TIMER_MS
          ? setTimeout(() => finish("again"), MAX_TIMER_MS)
          : setTimeout(() => finish("timeout"), remaining);
      }
      const connect = () => {
        const stale = ABSTRACT ? undefined : statOrUndefined(this.address);
        let connected = false;
        let code: string | undefined;
        socket = net.connect(this.address);
        socket.on("connect", () => {
          connected = true;
          socket!.resume();
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
  private removeStale(before: fs.Stats | undefined): void {
    const now = statOrUndefined(this.address);
    if (!now) return; // already gone
    if (!now.isSocket()) {
      throw new WarrenError(`FileLock ${JSON.stringify(this.path)}: ${this.address} exists and is not a socket; FileLock uses that path, remove the file`);
    }
    if (before && before.ino === now.ino && before.dev === now.dev) {
      try {
        fs.unlinkSync(this.address);
      } catch {
        // another waiter removed it first
      }
    }
  }

  private describeAddress(): string {
    return ABSTRACT ? `abstract socket @${this.address.slice(1)}` : this.address;
  }
}

function statOrUndefined(path: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(path);
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
