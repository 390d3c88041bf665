import * as path from "node:path";
import * as os from "node:os";

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
