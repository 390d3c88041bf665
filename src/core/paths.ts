import * as path from "node:path";
import * as os from "node:os";
import * as fs from "node:fs";

/** The installed package's root (package.json, rabbitmq.conf, broker/, dashboard/), from src/<part> or dist/src/<part>. */
export const PACKAGE_ROOT = path.join(__dirname, __filename.endsWith(".ts") ? "../.." : "../../..");

/**
 * Where a compiled entry point (a process or thread warren starts) lives: under dist/ even when
 * the caller runs from src/ through a TypeScript loader (the tests do).
 */
export function compiled(file: string): string {
  const sep = path.sep;
  return __filename.endsWith(".ts") ? file.replace(`${sep}src${sep}`, `${sep}dist${sep}src${sep}`) : file;
}

/**
 * A cluster's folder on this machine (Ray's `session_*`): its nodes' session directories, and the
 * head's registry (`head.lmdb`), which outlives a head process so that one started again reloads it.
 */
export function clusterDir(cluster: string): string {
  return path.join(WARREN_HOME, `session_${cluster}`);
}

/** Where warren keeps what it writes on this machine: the clusters' folders, the CLI's node records. */
export const WARREN_HOME = path.join(os.tmpdir(), "warren");

/** The head's registry file in its cluster's folder. */
export function registryFile(cluster: string): string {
  return path.join(clusterDir(cluster), "head.lmdb");
}

/** Where a private cluster's session folder is linked once it has shut down, with its logs (Ray's `session_latest`). */
export const LATEST_SESSION = path.join(WARREN_HOME, "session_latest");

/** Whether `cluster` is one `init()` started (a private cluster, in no one else's folder). */
export function isPrivateCluster(cluster: string): boolean {
  return /^local-[0-9a-f]+$/.test(cluster);
}

/** The folder name session_latest points to, if any. */
export function latestSession(): string | undefined {
  try {
    return path.basename(fs.readlinkSync(LATEST_SESSION));
  } catch {
    return undefined;
  }
}

/** Points session_latest at a private cluster's folder that has shut down (replacing the link at once). */
export function linkLatestSession(cluster: string): void {
  const tmp = `${LATEST_SESSION}.${process.pid}`;
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(path.basename(clusterDir(cluster)), tmp);
  fs.renameSync(tmp, LATEST_SESSION);
}
