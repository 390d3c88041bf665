/**
 * Options: the option objects users pass to remote(), .options(), actor(), method() and init(),
 * validated with class-validator. Anything may arrive (plain JavaScript callers), so input is
 * checked to be a plain object, copied onto a schema instance (no class-transformer), validated
 * with unknown keys forbidden, and every bad field is reported in one OptionsError. Results are
 * frozen plain objects holding only the keys that were given, with resource amounts rounded to
 * 4 decimal places like Ray.
 */
// ---------------------------------------------------------------------------------------------
// Public types (every field optional)

/** The resource fields shared by tasks, actors and init() (a node's capacity). */
export interface ResourceOptions {
  numCpus?: number;
  numGpus?: number;
  memory?: number;
  /** Custom resources, e.g. `{ Custom1: 1 }`. Not CPU/GPU/memory/object_store_memory. */
  resources?: Record<string, number>;
}

export interface TaskOptions extends ResourceOptions {
  acceleratorType?: string;
  name?: string;
  numReturns?: number;
  /** -1 retries forever. */
  maxRetries?: number;
  retryExceptions?: boolean;
}

export interface ActorOptions extends ResourceOptions {
  acceleratorType?: string;
  name?: string;
  namespace?: string;
  lifetime?: "detached" | "non_detached";
  getIfExists?: boolean;
  /** -1 restarts forever. */
  maxRestarts?: number;
  /** -1 retries forever. */
  maxTaskRetries?: number;
  maxConcurrency?: number;
  /** Named groups of methods and how many calls of each may run at once (Ray's concurrency groups). */
  concurrencyGroups?: Record<string, number>;
  /**
   * `"own"` (the default): the actor has a worker process of its own. `"shared"`: it lives with
   * other shared actors in a host process of its node (thousands per node), with its own mailbox,
   * calls, state and death; its host's crash kills it (and restarts it within maxRestarts).
   */
  process?: "own" | "shared";
}

export interface MethodOptions {
  numReturns?: number;
  concurrencyGroup?: string;
  name?: string;
}

export interface InitOptions extends ResourceOptions {
  /** A broker URL, or the URLs of one RabbitMQ cluster's nodes (an array, or comma-separated), tried in turn. */
  address?: string | string[];
  cluster?: string;
  namespace?: string;
  logToDriver?: boolean;
  objectStoreMemory?: number;
  /**
   * Durable mode for a private cluster: shape queues and actor mailboxes are quorum queues (kept
   * over a RabbitMQ cluster's nodes), task and call messages persistent, published with confirms.
   * A driver that joins a cluster (`cluster`) takes its head's setting.
   */
  durable?: boolean;
  /**
   * What a task or actor whose demand no node of the cluster has gets: a warning printed by this
   * process (`"warn"`, the default: it keeps waiting, for a node that may join), or an
   * `InfeasibleError` (`"error"`).
   */
  onInfeasible?: "warn" | "error";
  /** Whether a private cluster's head serves the web dashboard (default true, as Ray's include_dashboard). */
  includeDashboard?: boolean;
  /** The dashboard's port: default 8265 (or the next free one after it); 0 picks a free one. */
  dashboardPort?: number;
  /** The interface the dashboard listens on: default 127.0.0.1 (this machine only); 0.0.0.0 for every one. */
  dashboardHost?: string;
}

const EMPTY = Object.freeze({});

/**
 * Options written at a module's top level (remote(opts, fn), @actor, @method), as a worker loads
 * that module: the driver that loaded it first has validated the same literal, so a worker takes
 * them as they are instead of loading the validator to check them again.
 */
export function definitionOptions<T extends object>(input: unknown, validate: (input: unknown, where: string) => Readonly<T>, where: string): Readonly<T> {
  return process.env.WARREN_WORKER && input !== null && typeof input === "object" ? Object.freeze({ ...input }) as Readonly<T> : validate(input, where);
}

/** Validates with the schema named; no options at all is valid without loading the validator. */
function validate<T extends object>(schema: "TaskOptionsSchema" | "ActorOptionsSchema" | "MethodOptionsSchema" | "InitOptionsSchema", input: unknown, where: string): Readonly<T> {
  if (input === undefined || (typeof input === "object" && input !== null && Object.getPrototypeOf(input) === Object.prototype && Object.keys(input).length === 0)) {
    return EMPTY as Readonly<T>;
  }
  const schemas: typeof import("./schema") = require("./schema");
  return schemas.validateWith(schemas[schema] as unknown as new () => T, input, where);
}

/** Validates the options of `remote(opts, fn)` / `f.options(opts)`. Throws OptionsError. */
export function validateTaskOptions(input: unknown, where = "task options"): Readonly<TaskOptions> {
  return validate("TaskOptionsSchema", input, where);
}

/** Validates the options of `actor(opts)` / `Cls.options(opts)`. Throws OptionsError. */
export function validateActorOptions(input: unknown, where = "actor options"): Readonly<ActorOptions> {
  return validate("ActorOptionsSchema", input, where);
}

/** Validates the options of `method(opts)`. Throws OptionsError. */
export function validateMethodOptions(input: unknown, where = "actor method options"): Readonly<MethodOptions> {
  return validate("MethodOptionsSchema", input, where);
}

/** Validates the options of `init(opts)`; undefined is `{}`. Throws OptionsError. */
export function validateInitOptions(input: unknown): Readonly<InitOptions> {
  return validate("InitOptionsSchema", input, "init() options");
}

/**
 * Layers `.options()` over defaults: each key given (not undefined) in `override` wins; objects
 * such as `resources` are replaced whole, not merged, like Ray. Returns a new frozen object.
 */
export function mergeOptions<T extends object>(base: T | undefined, override: T | undefined): Readonly<T> {
  const given = Object.entries(override ?? {}).filter(([, v]) => v !== undefined);
  return Object.freeze(Object.fromEntries([...Object.entries(base ?? {}), ...given])) as Readonly<T>;
}
