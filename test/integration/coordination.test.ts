// Coordination: FileLock between real processes, ClusterLock between real broker connections.
// The child fixtures load the compiled locks from dist/ (`npm run build` first; `npm test` does).
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import * as amqp from "amqplib";
import * as warren from "warren";
import { ClusterLock, FileLock, LockTimeoutError, WarrenError, withClusterLock, withFileLock } from "warren";
import { waitForCondition } from "warren/testing";
import { DEFAULT_ADDRESS } from "../../src/transport";
import { brokerHas } from "../helpers";

const FIXTURES = path.join(__dirname, "..", "fixtures");
const ADDRESS = process.env.WARREN_ADDRESS ?? DEFAULT_ADDRESS;

interface Child {
  proc: ChildProcess;
  /** Resolves when the child prints `text` on a line of its own; rejects if it exits first. */
  line(text: string): Promise<void>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

const children: ChildProcess[] = [];

function startChild(script: string, args: string[], env: Record<string, string> = {}): Child {
  const proc = spawn(process.execPath, [path.join(FIXTURES, script), ...args], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  children.push(proc);
  let out = "";
  let err = "";
  const listeners: Array<() => void> = [];
  proc.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
    for (const l of listeners) l();
  });
  proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on("exit", (code, signal) => resolve({ code, signal })));
  return {
    proc,
    exit,
    stderr: () => err,
    line: (text) =>
      new Promise<void>((resolve, reject) => {
        const check = () => out.split("\n").includes(text) && resolve();
        listeners.push(check);
        check();
        void exit.then(({ code, signal }) => reject(new Error(`child ${script} exited (${code ?? signal}) before printing ${text}:\n${err}`)));
      }),
  };
}

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "warren-coordination-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A lock path no other test (or run) uses. */
function lockPath(): string {
  return path.join(dir, `${crypto.randomUUID()}.lock`);
}

/**
 * Whether the lock queue `queue` exists. A passive declare of an exclusive queue from another
 * connection fails with 405 RESOURCE_LOCKED (so test/helpers' brokerHas says false): that means held.
 */
async function lockQueueExists(queue: string): Promise<boolean> {
  const conn = await amqp.connect(ADDRESS);
  try {
    const ch = await conn.createChannel();
    ch.on("error", () => undefined);
    return await ch.checkQueue(queue).then(
      () => true,
      (err) => {
        if (err.code === 405) return true;
        if (err.code === 404) return false;
        throw err;
      },
    );
  } finally {
    await conn.close();
  }
}

/** Whether a Unix socket at `file` accepts a connection. */
function connects(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(file);
    socket.on("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

/** Whether `promise` has settled, looked at now (after pending microtasks). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol();
  return (await Promise.race([promise.then(() => true, () => true), Promise.resolve(marker)])) !== marker;
}

/** `lock` waits while the child holds it; SIGKILLing the child hands it over within a second. */
async function expectHandoverOnKill(holder: Child, lock: { acquire(): Promise<unknown> }): Promise<void> {
  const acquired = lock.acquire();
  expect(await settled(acquired)).toBe(false);
  const killedAt = Date.now();
  holder.proc.kill("SIGKILL");
  await acquired;
  expect(Date.now() - killedAt).toBeLessThan(1000);
}

describe("FileLock", () => {
  // The socket-file variant is what non-Linux platforms use; WARREN_FILELOCK_SOCKET_FILE selects it here.
  test.each([
    ["an abstract socket (Linux)", {}],
    ["a socket file (other platforms)", { WARREN_FILELOCK_SOCKET_FILE: "1" }],
  ])("four processes contending never interleave their critical sections: %s", async (_, env) => {
    const lock = lockPath();
    const file = path.join(dir, `${crypto.randomUUID()}.txt`);
    const count = 25;
    const writers = [0, 1, 2, 3].map((id) => startChild("lock_writer.js", [lock, file, String(id), String(count)], env));
    await Promise.all(writers.map((w) => w.line("ready")));
    for (const w of writers) w.proc.stdin!.write("go\n"); // all start contending at once
    const exits = await Promise.all(writers.map((w) => w.exit));
    expect(exits.map((e, i) => e.code ?? writers[i].stderr())).toEqual([0, 0, 0, 0]);

    const lines = fs.readFileSync(file, "utf8").trim().split("\n");
    expect(lines).toHaveLength(4 * count * 2);
    const seen = new Set<string>();
    for (let i = 0; i < lines.length; i += 2) {
      const [start, end] = [lines[i], lines[i + 1]];
      expect(start).toMatch(/^start \d \d+$/);
      expect(end).toBe(start.replace("start", "end")); // the same critical section closes next
      seen.add(start);
    }
    expect(seen.size).toBe(4 * count);
    // They really contended: the writers' sections alternate rather than running one after another.
    const switches = lines.filter((l, i) => i >= 2 && l.startsWith("start") && l.split(" ")[1] !== lines[i - 2].split(" ")[1]);
    expect(switches.length).toBeGreaterThan(3);
  });

  test("a holder that is SIGKILLed releases the lock at once", async () => {
    const p = lockPath();
    const holder = startChild("lock_holder.js", ["file", p, "hold"]);
    await holder.line("held");
    // The child really holds it...
    await expect(new FileLock(p, { timeout: 0.2 }).acquire()).rejects.toThrow(LockTimeoutError);
    const lock = new FileLock(p);
    // ...and its death hands it over without any stale-lock timeout.
    await expectHandoverOnKill(holder, lock);
    expect(lock.isLocked).toBe(true);
    expect((await holder.exit).signal).toBe("SIGKILL");
    await lock.release();
  });

  test("the socket-file variant: a SIGKILLed holder's stale file is recognised and removed", async () => {
    const p = lockPath();
    const env = { WARREN_FILELOCK_SOCKET_FILE: "1" };
    const holder = startChild("lock_holder.js", ["file", p, "hold"], env);
    await holder.line("held");
    expect(fs.lstatSync(`${p}.sock`).isSocket()).toBe(true);
    const waiter = startChild("lock_holder.js", ["file", p], env);
    await waiter.line("started");
    holder.proc.kill("SIGKILL");
    await holder.exit;
    await waiter.line("held"); // it connected, saw the holder vanish, found the file dead and removed it
    expect((await waiter.exit).code).toBe(0);
    // The waiter exited holding it: its file is stale in turn (it refuses connections)...
    expect(await connects(`${p}.sock`)).toBe(false);
    const next = startChild("lock_holder.js", ["file", p, "hold"], env);
    await next.line("held");
    // ...and the next holder replaced it with its live socket.
    expect(await connects(`${p}.sock`)).toBe(true);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith(path.basename(p)) && f !== `${path.basename(p)}.sock`)).toEqual([]); // no temporary names left
  });

  test("holding a lock does not keep a process alive, and exiting releases it", async () => {
    const p = lockPath();
    const holder = startChild("lock_holder.js", ["file", p]); // acquires, prints, returns
    await holder.line("held");
    expect((await holder.exit).code).toBe(0);
    await withFileLock(p, () => undefined, { timeout: 0 });
  });

  test("a pending acquire keeps its process alive until it gets the lock", async () => {
    const p = lockPath();
    const mine = new FileLock(p);
    await mine.acquire();
    const waiter = startChild("lock_holder.js", ["file", p]); // nothing but the acquire keeps it running
    await waiter.line("started");
    // The child is connected to us, waiting (white box: our holder's list of waiters).
    await waitForCondition(() => {
      if (waiter.proc.exitCode !== null) throw new Error(`the waiting child exited (${waiter.proc.exitCode}) while the lock was held`);
      return (mine as unknown as { waiters: Set<unknown> }).waiters.size === 1;
    }, 10);
    expect(waiter.proc.exitCode).toBeNull();
    await mine.release();
    await waiter.line("held");
    expect((await waiter.exit).code).toBe(0);
  });

  test("two FileLock objects in one process exclude each other; a timeout is a clear LockTimeoutError", async () => {
    const p = lockPath();
    const a = new FileLock(p);
    await a.acquire();
    const began = Date.now();
    const err = await new FileLock(p, { timeout: 0.3 }).acquire().catch((e) => e);
    expect(Date.now() - began).toBeGreaterThanOrEqual(290);
    expect(err).toBeInstanceOf(LockTimeoutError);
    expect(err).toBeInstanceOf(WarrenError);
    expect(err.name).toBe("LockTimeoutError");
    expect(err.message).toContain(p);
    expect(err.message).toContain("0.3 s");
    expect(err.lock).toBe(p);
    expect(err.timeout).toBe(0.3);
    // timeout 0 tries once
    const t0 = Date.now();
    await expect(new FileLock(p, { timeout: 0 }).acquire()).rejects.toThrow(LockTimeoutError);
    expect(Date.now() - t0).toBeLessThan(200);
    // a waiter without timeout gets it when the holder releases
    const b = new FileLock(p);
    const bAcquired = b.acquire();
    expect(await settled(bAcquired)).toBe(false);
    await a.release();
    await bAcquired;
    expect(b.isLocked).toBe(true);
    expect(a.isLocked).toBe(false);
    await b.release();
  });

  test("misuse is a clear error: double acquire, acquire while pending, release when not held, bad options", async () => {
    const p = lockPath();
    const lock = new FileLock(p);
    await expect(lock.release()).rejects.toThrow(/not held by this FileLock object/);
    await lock.acquire();
    await expect(lock.acquire()).rejects.toThrow(/already held by this FileLock object.*not reentrant/);
    expect(lock.isLocked).toBe(true); // the failed acquire changed nothing
    const other = new FileLock(p);
    const pending = other.acquire();
    await expect(other.acquire()).rejects.toThrow(/already pending/);
    await lock.release();
    await pending;
    await other.release();
    await expect(other.release()).rejects.toThrow(/not held/);
    expect(() => new FileLock(p, { timeout: -1 })).toThrow(warren.OptionsError);
    expect(() => new FileLock("")).toThrow(/path/);
  });

  test("withFileLock returns fn's value and releases after a throw", async () => {
    const p = lockPath();
    expect(await withFileLock(p, async () => 42)).toBe(42);
    await expect(withFileLock(p, () => {
      throw new Error("boom");
    })).rejects.toThrow("boom");
    await withFileLock(p, () => undefined, { timeout: 0 }); // free again
  });

  test("a relative path is resolved: the same lock as its absolute form", async () => {
    const rel = path.relative(process.cwd(), lockPath());
    const a = new FileLock(rel);
    expect(a.path).toBe(path.resolve(rel));
    await a.acquire();
    await expect(new FileLock(path.resolve(rel), { timeout: 0 }).acquire()).rejects.toThrow(LockTimeoutError);
    await a.release();
    expect(fs.existsSync(a.path)).toBe(false); // the lock path is only a name
  });
});

describe("ClusterLock", () => {
  const cluster = `locktest-${crypto.randomUUID().slice(0, 8)}`;
  const prefix = `warren.${cluster}`;
  const opts = { cluster, address: ADDRESS };
  const names: string[] = [];
  const lockName = () => {
    const n = `l${names.length}-${crypto.randomUUID().slice(0, 6)}`;
    names.push(n);
    return n;
  };

  /** Every ClusterLock a test makes, so a failed test leaves none held (nor its connection open). */
  const made: ClusterLock[] = [];
  const mk = (name: string, options?: ConstructorParameters<typeof ClusterLock>[1]) => {
    const l = new ClusterLock(name, options);
    made.push(l);
    return l;
  };
  afterEach(async () => {
    for (const l of made.splice(0)) if (l.isLocked) await l.release();
  });

  afterAll(async () => {
    const conn = await amqp.connect(ADDRESS);
    try {
      for (const q of [...names.map((n) => `${prefix}.lock.${n}`)]) {
        const ch = await conn.createChannel();
        ch.on("error", () => undefined);
        await ch.deleteQueue(q).then(() => ch.close(), () => undefined);
      }
      const ch = await conn.createChannel();
      await ch.deleteExchange(`${prefix}.locks`);
      await ch.close();
    } finally {
      await conn.close();
    }
  });

  test("without init() and without { cluster } it is the clear not-initialized error", async () => {
    await expect(mk("x").acquire()).rejects.toThrow(/warren is not initialized/);
    expect(() => mk("a.*")).toThrow(warren.OptionsError);
    expect(() => mk("x", { address: ADDRESS })).toThrow(/cluster/);
  });

  test("a second connection waits until the first releases, and is woken at once", async () => {
    const name = lockName();
    const a = mk(name, opts);
    await a.acquire();
    expect(await lockQueueExists(`${prefix}.lock.${name}`)).toBe(true);
    const err = await mk(name, { ...opts, timeout: 0.3 }).acquire().catch((e) => e);
    expect(err).toBeInstanceOf(LockTimeoutError);
    expect(err.message).toContain(name);
    expect(err.message).toContain("0.3 s");

    const b = mk(name, opts);
    const bAcquired = b.acquire();
    // b is subscribed to release notices once the exchange has its binding
    await waitForCondition(() => brokerHas("exchange", `${prefix}.locks`), 10);
    expect(await settled(bAcquired)).toBe(false);
    const releasedAt = Date.now();
    await a.release();
    await bAcquired;
    // well under the 300 ms retry timer: the release notice woke it
    expect(Date.now() - releasedAt).toBeLessThan(200);
    expect(b.isLocked).toBe(true);
    await b.release();
    expect(await lockQueueExists(`${prefix}.lock.${name}`)).toBe(false);
    // the auto-delete exchange went with its last waiter
    await waitForCondition(async () => !(await brokerHas("exchange", `${prefix}.locks`)), 10);
  });

  test("a holder whose connection closes releases to the waiter promptly", async () => {
    const name = lockName();
    const a = mk(name, opts);
    await a.acquire();
    const b = mk(name, opts);
    const bAcquired = b.acquire();
    expect(await settled(bAcquired)).toBe(false);
    const closedAt = Date.now();
    await (a as unknown as { held: { conn: amqp.ChannelModel } }).held.conn.close(); // no release, no notice
    await bAcquired;
    expect(Date.now() - closedAt).toBeLessThan(1000);
    await b.release();
    await a.release(); // a's release after its connection died is quiet
  });

  test("a holder process that is SIGKILLed releases to the waiter promptly", async () => {
    const name = lockName();
    const holder = startChild("lock_holder.js", ["cluster", name, cluster, ADDRESS]);
    await holder.line("held");
    await expect(mk(name, { ...opts, timeout: 0 }).acquire()).rejects.toThrow(LockTimeoutError);
    const lock = mk(name, opts);
    await expectHandoverOnKill(holder, lock);
    await lock.release();
  });

  test("misuse errors, and withClusterLock releases after a throw", async () => {
    const name = lockName();
    const lock = mk(name, opts);
    await expect(lock.release()).rejects.toThrow(/not held by this ClusterLock object/);
    await lock.acquire();
    await expect(lock.acquire()).rejects.toThrow(/already held/);
    await lock.release();
    await expect(withClusterLock(name, () => {
      throw new Error("boom");
    }, opts)).rejects.toThrow("boom");
    expect(await withClusterLock(name, () => 7, { ...opts, timeout: 0 })).toBe(7);
  });

  test("on the runtime's connection: the cluster's names, and lock objects sharing it still exclude", async () => {
    const info = await warren.init({ numCpus: 1 });
    try {
      const name = lockName();
      const a = mk(name);
      await a.acquire();
      expect(await lockQueueExists(`warren.${info.cluster}.lock.${name}`)).toBe(true);
      await expect(mk(name, { timeout: 0.2 }).acquire()).rejects.toThrow(LockTimeoutError);
      const b = mk(name);
      const bAcquired = b.acquire();
      expect(await settled(bAcquired)).toBe(false);
      await a.release();
      await bAcquired;
      await b.release();
      expect(await lockQueueExists(`warren.${info.cluster}.lock.${name}`)).toBe(false);
    } finally {
      await warren.shutdown();
    }
  });
});
