/**
 * coordination: locks between processes. FileLock excludes the processes of one machine (an
 * abstract Unix socket, freed by the kernel when its holder dies); ClusterLock excludes the
 * nodes of a cluster (an exclusive broker queue, freed when its holder's connection dies).
 */
export { FileLock, withFileLock } from "./file-lock";
export type { LockOptions } from "./file-lock";
export { ClusterLock, withClusterLock } from "./cluster-lock";
export type { ClusterLockOptions } from "./cluster-lock";
export { LockTimeoutError } from "./errors";
