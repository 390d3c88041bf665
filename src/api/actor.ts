/**
 * Actors: `@actor(options)` classes extending `Actor`, created with `Cls.remote(...)` or
 * `Cls.options({...}).remote(...)`. Creation is a task of the actor's placement shape; the worker
 * that runs it becomes the actor and consumes its mailbox. Named actors are registered with the
 * head before `.remote()` returns, so a taken name throws there and get-or-create is one actor.
 */
import "reflect-metadata";
import { randomBytes } from "node:crypto";
import { OptionsError, WarrenError } from "../errors";
import { ActorOptions, MethodOptions, definitionOptions, mergeOptions, validateActorOptions, validateMethodOptions } from "../options";
import { actorDemand, shapeKey } from "../scheduling/shape";
import { register } from "../core/functions";
import type { Descriptor, HandleInfo } from "../wire/descriptors";
import type { RemoteArgs } from "../core/template";
import { currentRuntime } from "../core/current";
import { taskContext } from "../core/context";
import { DECLARED } from "../core/template";
import { ActorHandle, ActorHandleCore, HANDLE_KEY } from "../core/actor-handle";

export type { HandleInfo } from "../wire/descriptors";

const ACTOR_META = "warren:actor";

interface ActorMeta {
  desc: Descriptor;
  options: Readonly<ActorOptions>;
  methods: HandleInfo["methods"];
  hasAsync: boolean;
}

type ActorClass = abstract new (...args: any[]) => Actor;

/** Method options set by `@method`, found again when the class decorator describes the class. */
const methodOptions = new WeakMap<Function, Readonly<MethodOptions>>();

/** Base class of actor classes: gives them typed `remote()` and `options()`. */
export class Actor {
  /** Creates an actor of this class with the class's options. */
  static remote<C extends ActorClass>(this: C, ...args: RemoteArgs<ConstructorParameters<C>>): ActorHandle<InstanceType<C>> {
    return createActor(this, {}, args) as ActorHandle<InstanceType<C>>;
  }

  /** This class with options changed for the actors created through the result. */
  static options<C extends ActorClass>(this: C, options: ActorOptions): { remote(...args: RemoteArgs<ConstructorParameters<C>>): ActorHandle<InstanceType<C>> } {
    const o = validateActorOptions(options, `${this.name}.options()`);
    return { remote: (...args) => createActor(this, o, args) as ActorHandle<InstanceType<C>> };
  }
}

/**
 * Class decorator (also callable: `actor(opts)(class X extends Actor {...})`). Works as a legacy
 * (experimentalDecorators) and as a standard decorator. Use at the top level of a module.
 */
export function actor(options: ActorOptions = {}) {
  const validated = definitionOptions(options, validateActorOptions, "options of @warren.actor");
  return <C extends ActorClass>(cls: C, _context?: unknown): C => {
    if (typeof cls !== "function" || !(cls.prototype instanceof Actor)) {
      throw new WarrenError(`@warren.actor decorates classes that extend warren.Actor; ${(cls as { name?: string })?.name ?? cls} does not`);
    }
    const meta: ActorMeta = { desc: register(cls, cls.name), options: validated, ...describeMethods(cls) };
    checkGroups(cls.name, meta.methods, validated.concurrencyGroups);
    Reflect.defineMetadata(ACTOR_META, meta, cls);
    return cls;
  };
}

/** Method decorator: `@method({ numReturns: 2 })`. Legacy or standard decorators alike. */
export function method(options: MethodOptions) {
  const validated = definitionOptions(options, validateMethodOptions, "options of @warren.method");
  return (target: unknown, _key?: unknown, descriptor?: PropertyDescriptor): void => {
    const fn = descriptor ? descriptor.value : target;
    if (typeof fn !== "function") throw new WarrenError("@warren.method decorates methods");
    methodOptions.set(fn, validated);
  };
}

function describeMethods(cls: ActorClass): { methods: HandleInfo["methods"]; hasAsync: boolean } {
  const methods: HandleInfo["methods"] = {};
  let hasAsync = false;
  for (let proto = cls.prototype; proto && proto !== Actor.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      const fn = Object.getOwnPropertyDescriptor(proto, name)?.value;
      // Object's own methods (toString, valueOf, ...) stay the handle's: they are not remote.
      if (name in Object.prototype || typeof fn !== "function" || Object.hasOwn(methods, name)) continue;
      if (name in ActorHandleCore.prototype || name === HANDLE_KEY) {
        throw new WarrenError(`${cls.name}.${name}: an actor method cannot be named ${name}, which its handle has already (the handle's ${name} would hide it); rename the method`);
      }
      const o = methodOptions.get(fn);
      methods[name] = { numReturns: o?.numReturns ?? 1, ...(o?.concurrencyGroup !== undefined && { group: o.concurrencyGroup }) };
      if (fn.constructor.name.startsWith("Async")) hasAsync = true;
    }
  }
  return { methods, hasAsync };
}

/** Every method's concurrency group must be one the actor defines. */
function checkGroups(className: string, methods: HandleInfo["methods"], groups: Record<string, number> | undefined): void {
  const problems = Object.entries(methods)
    .filter(([, m]) => m.group !== undefined && !(groups && m.group in groups))
    .map(([name, m]) => ({
      field: `${name}.concurrencyGroup`,
      problem: `"${m.group}" is not one of the actor's concurrencyGroups (${groups ? Object.keys(groups).join(", ") : "none defined"}); define it with @warren.actor({ concurrencyGroups: { ${m.group}: N } })`,
    }));
  if (problems.length > 0) throw new OptionsError(`concurrency groups of ${className}`, problems);
}

export function actorMeta(cls: unknown): ActorMeta {
  const meta: ActorMeta | undefined = Reflect.getOwnMetadata(ACTOR_META, cls as object);
  if (!meta) {
    throw new WarrenError(`${(cls as { name?: string }).name} is not an actor class: decorate it with @warren.actor() at the top level of its module`);
  }
  return meta;
}

function createActor(cls: ActorClass, options: Readonly<ActorOptions>, args: unknown[]): ActorHandleCore {
  const meta = actorMeta(cls);
  const o = mergeOptions(meta.options, options);
  const rt = currentRuntime();
  const info: HandleInfo = { id: randomBytes(16).toString("hex"), className: meta.desc.name, cls: meta.desc, methods: meta.methods };
  const registration = {
    handle: info,
    owner: rt.config.ownerId,
    name: o.name,
    namespace: o.namespace ?? taskContext.getStore()?.namespace ?? rt.config.namespace,
    getIfExists: o.getIfExists ?? false,
    detached: o.lifetime === "detached",
    job: taskContext.getStore()?.jobId ?? rt.config.jobId,
  };
  let registered: Promise<unknown> = DECLARED;
  if (o.name !== undefined) {
    const r = rt.rpcSync.head("actor.register", registration);
    if (!r.created) return new ActorHandleCore(r.handle);
  } else {
    registered = rt.rpc.head("actor.register", registration);
  }
  const declared = rt.whenUp((ch) => rt.topo.declareMailbox(ch, info)).then(() => {
    rt.mailboxes.delete(info.id);
  });
  rt.mailboxes.set(info.id, declared);
  const { placement, held } = actorDemand(o);
  const shape = shapeKey(placement);
  const create = {
    handle: info, maxConcurrency: o.maxConcurrency ?? (meta.hasAsync ? 1000 : 1), maxTaskRetries: o.maxTaskRetries ?? 0, detached: registration.detached,
    concurrencyGroups: o.concurrencyGroups ?? {}, shared: o.process === "shared",
  };
  rt.submit(
    { fn: meta.desc, name: `${info.className}.__init__`, shape, numReturns: 0, maxRetries: 0, retryExceptions: false, actor: { id: info.id, create } },
    args,
    {
      exchange: rt.topo.tasks,
      key: shape,
      after: Promise.all([registered, declared, rt.submitter.ensureShape(shape)]).then(() => undefined),
      headers: { actor: info.id, actorClass: info.className, maxRestarts: o.maxRestarts ?? 0, restarts: 0, held: shapeKey(held), ...(create.shared && { shared: true }) },
    },
  );
  return new ActorHandleCore(info);
}

/** The handle of the live actor named `name` (in `namespace`, default this job's). */
export async function getActor<T = unknown>(name: string, options: { namespace?: string } = {}): Promise<ActorHandle<T>> {
  const rt = currentRuntime();
  const namespace = options.namespace ?? taskContext.getStore()?.namespace ?? rt.config.namespace;
  const info = await rt.rpc.head("actor.get", { name, namespace });
  if (!info) throw new WarrenError(`no live actor named "${name}" in namespace "${namespace}": create it with .options({ name }) first, or check the namespace`);
  return new ActorHandleCore(info) as ActorHandle<T>;
}

/**
 * Kills an actor at once, like SIGKILL; it restarts (maxRestarts) unless `noRestart` (default).
 * Resolves once the head has that incarnation over: every later call, from any process, then
 * fails with ActorDiedError, or goes to the restarted actor.
 */
export async function kill(handle: ActorHandleCore, options: { noRestart?: boolean } = {}): Promise<void> {
  if (!(handle instanceof ActorHandleCore)) throw new WarrenError("kill() takes an actor handle");
  // The longest wait of any request, and within its timeout: TRANSPORT_DEFAULTS.requestTimeoutMs says why.
  await currentRuntime().rpc.head("actor.kill", { id: handle.actorId, noRestart: options.noRestart ?? true });
}

/** Inside an actor method: the actor exits once this call returns; later calls fail with ActorDiedError. */
export function exitActor(): void {
  const ctx = taskContext.getStore();
  const exit = currentRuntime().onExitActor;
  if (!ctx?.actorId || !exit) throw new WarrenError("exitActor() can only be called inside an actor method");
  exit(ctx.actorId);
}
