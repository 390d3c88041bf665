/**
 * The class-validator schemas behind src/options: loaded on first use (class-validator costs a
 * worker about 80 ms to load, and workers rarely validate anything: see api/remote.ts).
 */
import "reflect-metadata";
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsNumber,
  IsPositive,
  IsString,
  Matches,
  Max,
  Min,
  ValidateBy,
  ValidateIf,
  getMetadataStorage,
  validateSync,
  type ValidationArguments,
  type ValidationOptions,
} from "class-validator";
import { OptionsError, type FieldProblem } from "../errors";
import { brokerUrls, redactAddress } from "../address";
import { roundAmount } from "../scheduling/shape";
import type { ActorOptions, InitOptions, MethodOptions, ResourceOptions, TaskOptions } from "./index";

// ---------------------------------------------------------------------------------------------
// Helpers

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  // Object.prototype (of any realm) or Object.create(null); class instances, arrays, Maps fail.
  return proto === null || Object.getPrototypeOf(proto) === null;
}

const clip = (s: string) => (s.length > 80 ? `${s.slice(0, 77)}...` : s);

/** A short, safe rendering of a bad value for messages (broker passwords redacted). */
function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(clip(redactAddress(v)));
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "function") return `function ${v.name || "(anonymous)"}`;
  if (typeof v === "symbol") return v.toString();
  if (typeof v !== "object" || v === null) return String(v);
  if (Array.isArray(v) || isPlainObject(v)) {
    try {
      return clip(redactAddress(JSON.stringify(v)));
    } catch {
      return Array.isArray(v) ? "an array" : "an object";
    }
  }
  const name = (Object.getPrototypeOf(v) as { constructor?: { name?: string } }).constructor?.name;
  return `an instance of ${name || "a class"}`;
}

/** `resources.Custom1`, or `resources["a b"]` for names that do not read as a path. */
function subField(parent: string, key: string): string {
  return /^[\w$:.\-]+$/.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

const FINITE = { allowNaN: false, allowInfinity: false };
const RESERVED = new Map<string, string>(Object.entries({
  CPU: "use the numCpus option instead of resources.CPU",
  GPU: "use the numGpus option instead of resources.GPU",
  memory: "use the memory option instead of resources.memory",
  object_store_memory:
    "cannot be requested; use the memory option (a node's object store size is init's objectStoreMemory)",
}));

/** Why a custom resource name (or an acceleratorType) cannot be a routing-key segment, if so. */
function resourceNameProblem(name: string): string | undefined {
  if (name === "") return "resource names must be non-empty";
  if (/[,\s]/.test(name)) return `must not contain ',' or whitespace, since it becomes a routing key (got ${show(name)})`;
  return undefined;
}

/** Why an amount is bad, or undefined. Shared by numCpus/numGpus/memory and resources values. */
function amountProblem(v: unknown): string | undefined {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) return `must be a number >= 0 (got ${show(v)})`;
  if (v > 0 && roundAmount(v) === 0) {
    return `must be 0 or at least 0.0001: amounts are rounded to 4 decimal places (got ${show(v)})`;
  }
  return undefined;
}

/** Every problem with a `resources` value, one per bad entry. */
function resourceProblems(value: unknown): FieldProblem[] {
  if (!isPlainObject(value)) {
    return [{ field: "resources", problem: `must be a plain object of resource name -> amount, like { Custom1: 1 } (got ${show(value)})` }];
  }
  const problems: FieldProblem[] = [];
  for (const [name, amount] of Object.entries(value)) {
    const problem = RESERVED.get(name) ?? resourceNameProblem(name) ?? amountProblem(amount);
    if (problem) problems.push({ field: subField("resources", name), problem });
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Decorators: each field gets one message saying what is allowed; undefined means "not given".

type Check = (o: ValidationOptions) => PropertyDecorator;

function rule(allowed: string, ...checks: Check[]): PropertyDecorator {
  const o: ValidationOptions = { message: (a: ValidationArguments) => `must be ${allowed} (got ${show(a.value)})` };
  return (target, key) => {
    ValidateIf((_obj: object, v: unknown) => v !== undefined)(target, key);
    for (const check of checks) check(o)(target, key);
  };
}

/** A custom check whose message is computed from the value. */
function check(name: string, problem: (v: unknown, object: object) => string | undefined): PropertyDecorator {
  return (target, key) => {
    ValidateIf((_obj: object, v: unknown) => v !== undefined)(target, key);
    ValidateBy({
      name,
      validator: {
        validate: (v: unknown, a?: ValidationArguments) => problem(v, a?.object ?? {}) === undefined,
        defaultMessage: (a?: ValidationArguments) => problem(a?.value, a?.object ?? {}) ?? "",
      },
    })(target, key);
  };
}

const RESOURCES_CHECK = "isResourceMap";
const Amount = check("isAmount", amountProblem);
const Resources = check(RESOURCES_CHECK, (v) => {
  const problems = resourceProblems(v);
  return problems.length ? problems.map((p) => `${p.field}: ${p.problem}`).join("; ") : undefined;
});
/** A broker address: an amqp:// or amqps:// URL, a comma-separated list of them, or an array of them. */
const Address = check("isBrokerAddress", (v) => {
  const urls = typeof v === "string" ? brokerUrls(v) : Array.isArray(v) && v.every((u) => typeof u === "string") ? v : undefined;
  if (urls?.length && urls.every((u) => /^amqps?:\/\//i.test(u) && brokerUrls(u).length === 1)) return undefined;
  return `must be an amqp:// or amqps:// URL, a comma-separated list of them, or an array of them (the nodes of one RabbitMQ cluster) (got ${show(v)})`;
});
const NonEmptyString = rule("a non-empty string", IsString, IsNotEmpty);
const Bool = rule("a boolean", IsBoolean);
const IntAtLeast = (min: number, note = "") => rule(`an integer >= ${min}${note}`, IsInt, (o) => Min(min, o));
const AcceleratorType = check("isAcceleratorType", (v) =>
  typeof v !== "string" || v === ""
    ? `must be a non-empty string such as "V100" (got ${show(v)})`
    : resourceNameProblem(v),
);

// ---------------------------------------------------------------------------------------------
// Schemas. Decorators on a base class are inherited by class-validator.

class ResourceFields implements ResourceOptions {
  @Amount numCpus?: number;
  @Amount numGpus?: number;
  @Amount memory?: number;
  @Resources resources?: Record<string, number>;
}

class DemandFields extends ResourceFields {
  @AcceleratorType acceleratorType?: string;
}

export class TaskOptionsSchema extends DemandFields implements TaskOptions {
  @NonEmptyString name?: string;
  @IntAtLeast(0) numReturns?: number;
  @IntAtLeast(-1, " (-1 retries forever)") maxRetries?: number;
  @Bool retryExceptions?: boolean;
}

export class ActorOptionsSchema extends DemandFields implements ActorOptions {
  @NonEmptyString name?: string;
  @NonEmptyString namespace?: string;
  @rule(`"detached" or "non_detached"`, (o) => IsIn(["detached", "non_detached"], o))
  lifetime?: "detached" | "non_detached";
  @Bool
  @check("getIfExistsNeedsName", (v, o) =>
    v === true && typeof (o as ActorOptions).name !== "string"
      ? "requires name (getIfExists looks the actor up by its name)"
      : undefined,
  )
  getIfExists?: boolean;
  @IntAtLeast(-1, " (-1 restarts forever)") maxRestarts?: number;
  @IntAtLeast(-1, " (-1 retries forever)") maxTaskRetries?: number;
  @IntAtLeast(1) maxConcurrency?: number;
  @check("isConcurrencyGroups", (v) =>
    typeof v !== "object" || v === null || Array.isArray(v)
      ? `must be an object of group name -> integer >= 1, like { io: 2 } (got ${show(v)})`
      : Object.entries(v).map(([k, n]) => (k === "" ? "group names must be non-empty" : Number.isInteger(n) && (n as number) >= 1 ? undefined : `${k}: must be an integer >= 1 (got ${show(n)})`)).find(Boolean),
  )
  concurrencyGroups?: Record<string, number>;
  @rule(`"own" or "shared"`, (o) => IsIn(["own", "shared"], o))
  @check("sharedTakesNoGpu", (v, o) =>
    v === "shared" && ((o as ActorOptions).numGpus ?? 0) > 0
      ? `"shared" cannot go with numGpus (the actors of a host process see the same GPUs); use process: "own" for an actor that takes GPUs`
      : undefined,
  )
  process?: "own" | "shared";
}

export class MethodOptionsSchema implements MethodOptions {
  @IntAtLeast(0) numReturns?: number;
  @NonEmptyString concurrencyGroup?: string;
  @NonEmptyString name?: string;
}

export class InitOptionsSchema extends ResourceFields implements InitOptions {
  @Address address?: string | string[];
  @rule("a non-empty string of letters, digits, '_', '.' and '-'", IsString, (o) => Matches(/^[A-Za-z0-9_.-]+$/, o))
  cluster?: string;
  @NonEmptyString namespace?: string;
  @Bool logToDriver?: boolean;
  @rule("a number > 0 (bytes)", (o) => IsNumber(FINITE, o), IsPositive) objectStoreMemory?: number;
  @Bool durable?: boolean;
  @rule(`"warn" or "error"`, (o) => IsIn(["warn", "error"], o))
  onInfeasible?: "warn" | "error";
  @Bool includeDashboard?: boolean;
  @rule("an integer from 0 to 65535 (0 picks a free port)", IsInt, (o) => Min(0, o), (o) => Max(65535, o))
  dashboardPort?: number;
  @NonEmptyString dashboardHost?: string;
}

// ---------------------------------------------------------------------------------------------
// Validation

const allowedCache = new Map<Function, string[]>();

/** The option names a schema accepts (its decorated properties, inherited ones included). */
function allowedKeys(schema: Function): string[] {
  let keys = allowedCache.get(schema);
  if (!keys) {
    const metas = getMetadataStorage().getTargetValidationMetadatas(schema, "", false, false);
    keys = [...new Set(metas.map((m) => m.propertyName))];
    allowedCache.set(schema, keys);
  }
  return keys;
}

function unknownOption(key: string, allowed: string[]): string {
  const loose = key.replace(/[_-]/g, "").toLowerCase(); // num_cpus, NumCpus -> numCpus
  const guess = allowed.find((a) => a.toLowerCase() === loose);
  return `unknown option; allowed: ${allowed.join(", ")}${guess ? ` (did you mean ${guess}?)` : ""}`;
}

/** Normalizers applied to given values once they are valid. */
const NORMALIZE: Record<string, (v: never) => unknown> = {
  numCpus: roundAmount,
  numGpus: roundAmount,
  memory: roundAmount,
  resources: (r: Record<string, number>) =>
    Object.freeze(Object.fromEntries(Object.entries(r).map(([k, v]) => [k, roundAmount(v)]))),
};

export function validateWith<T extends object>(schema: new () => T, input: unknown, where: string): Readonly<T> {
  if (input === undefined) input = {};
  if (!isPlainObject(input)) {
    throw new OptionsError(where, [{ field: "options", problem: `must be a plain object like { numCpus: 1 } (got ${show(input)})` }]);
  }
  const allowed = allowedKeys(schema);
  const keys = Object.keys(input);
  const found = new Map<string, Set<string>>(); // field -> problems, deduplicated
  const report = (field: string, problem: string) => {
    if (!found.has(field)) found.set(field, new Set());
    found.get(field)!.add(problem);
  };

  const instance = new schema() as Record<string, unknown>;
  for (const key of keys) {
    // class-validator's whitelist misses names found on Object.prototype ("__proto__",
    // "constructor"...), so unknown keys are also checked here.
    if (!allowed.includes(key)) report(key, unknownOption(key, allowed));
    // An own "constructor" would hide the schema from class-validator; it is reported above.
    if (key === "constructor") continue;
    Object.defineProperty(instance, key, { value: input[key], enumerable: true, writable: true, configurable: true });
  }

  const errors = validateSync(instance, { forbidUnknownValues: true, whitelist: true, forbidNonWhitelisted: true });
  for (const error of errors) {
    const field = error.property ?? "options";
    const constraints = error.constraints ?? {};
    for (const [name, message] of Object.entries(constraints)) {
      if (name === "whitelistValidation") report(field, unknownOption(field, allowed));
      else if (name === RESOURCES_CHECK) for (const p of resourceProblems(instance[field])) report(p.field, p.problem);
      else report(field, message);
    }
  }

  if (found.size > 0) {
    const order = (field: string) => {
      const i = keys.indexOf(field.split(/[.[]/)[0]);
      return i < 0 ? keys.length : i;
    };
    const problems: FieldProblem[] = [];
    for (const [field, set] of [...found].sort((a, b) => order(a[0]) - order(b[0]))) {
      for (const problem of set) problems.push({ field, problem });
    }
    throw new OptionsError(where, problems);
  }

  const out: Record<string, unknown> = {};
  for (const key of keys) {
    let value = input[key];
    if (value === undefined) continue;
    if (typeof value === "number") value = value + 0; // -0 -> 0
    const normalize = NORMALIZE[key] as ((v: unknown) => unknown) | undefined;
    out[key] = normalize ? normalize(value) : value;
  }
  return Object.freeze(out) as Readonly<T>;
}

