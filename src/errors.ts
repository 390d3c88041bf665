/**
 * Every error warren throws. All are `instanceof WarrenError`, carry a message that names what
 * went wrong and what to do, and keep the name a user can match on (`err.name`).
 */
import { redactAddress } from "./address";

export class WarrenError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The broker at `address` (or none of the brokers of a comma-separated list) did not answer. */
export class BrokerUnavailableError extends WarrenError {
  constructor(readonly address: string, cause?: unknown) {
    super(
      `cannot reach the RabbitMQ broker at ${redactAddress(address)}` +
        (cause instanceof Error ? ` (${cause.message})` : "") +
        ". Start one with `npx warren broker start`, or give the address of a broker that runs: " +
        "init({ address }), --address on the warren CLI, or WARREN_ADDRESS.",
      { cause },
    );
  }
}

/** The broker went away and stayed away longer than the outage a process survives (TRANSPORT_DEFAULTS.outageMs). */
export class BrokerLostError extends WarrenError {
  constructor(readonly address: string, readonly goneMs: number, limitMs: number, cause?: unknown) {
    super(
      `the RabbitMQ broker at ${redactAddress(address)} has been gone for ${(goneMs / 1000).toFixed(1)} s, longer than the ` +
        `${(limitMs / 1000).toFixed(0)} s warren waits for it (WARREN_BROKER_OUTAGE_S)` +
        (cause instanceof Error ? `; the last attempt said: ${cause.message}` : "") +
        ". Start the broker again, then call `await warren.shutdown()` and init() again.",
      { cause },
    );
  }
}

/** The broker answered but refused the address's user and password. */
export class BrokerAuthError extends WarrenError {
  constructor(readonly address: string, cause?: unknown) {
    super(
      `the RabbitMQ broker at ${redactAddress(address)} refused its user and password` +
        (cause instanceof Error ? ` (${cause.message})` : "") +
        ": check the user and password in the address (init({ address }), --address, or WARREN_ADDRESS: amqp://user:password@host:port), " +
        "and that the user may use the vhost (rabbitmqctl list_permissions).",
      { cause },
    );
  }
}

export interface FieldProblem {
  field: string;
  problem: string;
}

/** Invalid options: lists every bad field at once. */
export class OptionsError extends WarrenError {
  constructor(readonly where: string, readonly problems: FieldProblem[]) {
    super(`invalid ${where}: ` + problems.map((p) => `${p.field}: ${p.problem}`).join("; "));
  }
}

/** A value that cannot cross processes (a function, a socket...). */
export class SerializationError extends WarrenError {}

/** A remote task or actor method threw. `cause` is the original error, rebuilt. */
export class TaskError extends WarrenError {
  constructor(
    readonly functionName: string,
    readonly pid: number,
    readonly nodeId: string,
    readonly remoteStack: string,
    cause: unknown,
  ) {
    super(
      `task ${functionName} (pid=${pid}, node=${nodeId.slice(0, 12)}) failed: ` +
        (cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)) +
        `\n--- remote stack ---\n${remoteStack}`,
      { cause },
    );
  }
}

export class GetTimeoutError extends WarrenError {}
export class TaskCancelledError extends WarrenError {}
/** The worker running a task died (SIGKILL, out of memory...) more times than maxRetries allowed. */
export class WorkerCrashedError extends WarrenError {}
export class ActorDiedError extends WarrenError {}
export class NodeDiedError extends WarrenError {}
export class ObjectLostError extends WarrenError {}
/** A task or actor asks for resources no node of the cluster has, and init({ onInfeasible: "error" }) was set. */
export class InfeasibleError extends WarrenError {}
/** Raised by Queue.get on an empty queue (non-blocking, or after its timeout). */
export class Empty extends WarrenError {}
/** Raised by Queue.put on a full queue (non-blocking, or after its timeout). */
export class Full extends WarrenError {}
