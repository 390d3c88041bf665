import { WarrenError } from "../errors";

/**
 * A FileLock or ClusterLock was not acquired within its `timeout` (like Python filelock's
 * `Timeout`). `lock` is the lock's absolute path (FileLock) or name (ClusterLock); `timeout` is
 * in seconds, as passed.
 */
export class LockTimeoutError extends WarrenError {
  constructor(readonly kind: "FileLock" | "ClusterLock", readonly lock: string, readonly timeout: number) {
    super(
      `${kind} ${JSON.stringify(lock)} was not acquired within ${timeout} s: another holder kept it. ` +
        "Raise `timeout` (or leave it out to wait forever), or find the holder.",
    );
  }
}

/** The misuse both locks refuse: acquiring what this object already holds or is acquiring. */
export function checkAcquirable(kind: "FileLock" | "ClusterLock", name: string, held: boolean, acquiring: boolean): void {
  if (held) throw new WarrenError(`${kind} ${JSON.stringify(name)} is already held by this ${kind} object: release() it first (a ${kind} is not reentrant)`);
  if (acquiring) throw new WarrenError(`${kind} ${JSON.stringify(name)}: acquire() is already pending on this ${kind} object; await it (or use a second ${kind})`);
}
