/**
 * core: actor handles. A handle is self-describing (id, class, methods), so it works in any
 * process it is sent to: its only enumerable field is the `__warrenActor` marker, and each method
 * is a non-enumerable `ActorMethod` whose `.remote()` publishes to the actor's mailbox.
 */
import { inspect } from "node:util";
import { registerRevival } from "../serialization";
import { MethodOptions, validateMethodOptions } from "../options";
import type { HandleInfo } from "../wire/descriptors";
import { currentRuntime } from "./current";
import { RemoteArgs, ReturnRefs, TaskTemplate } from "./template";

export const HANDLE_KEY = "__warrenActor";


export class ActorHandleCore {
  readonly __warrenActor: HandleInfo;

  constructor(info: HandleInfo) {
    this.__warrenActor = info;
    for (const [name, m] of Object.entries(info.methods)) {
      Object.defineProperty(this, name, { value: new ActorMethod(info, name, { numReturns: m.numReturns }), enumerable: false });
    }
  }

  get actorId(): string {
    return this.__warrenActor.id;
  }

  toString(): string {
    return `ActorHandle(${this.__warrenActor.className}, ${this.__warrenActor.id})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

registerRevival(HANDLE_KEY, (info: HandleInfo) => new ActorHandleCore(info));

export class ActorMethod<A extends unknown[], R, N extends number = 1> {
  private template?: TaskTemplate;

  /** @internal */
  constructor(private readonly info: HandleInfo, private readonly method: string, private readonly opts: Readonly<MethodOptions>) {}

  /** Publishes a call to the actor's mailbox and returns at once with ref(s) to its result. */
  remote(...args: RemoteArgs<A>): ReturnRefs<R, N> {
    const rt = currentRuntime();
    const t = (this.template ??= {
      fn: this.info.cls,
      name: this.opts.name ?? `${this.info.className}.${this.method}`,
      shape: "",
      numReturns: this.opts.numReturns ?? 1,
      maxRetries: 0,
      retryExceptions: false,
      actor: { id: this.info.id, method: this.method },
    });
    const refs = rt.submit(t, args, { exchange: "", key: rt.topo.mailbox(this.info), after: rt.mailboxes.get(this.info.id) });
    return (t.numReturns === 1 ? refs[0] : t.numReturns === 0 ? undefined : refs) as ReturnRefs<R, N>;
  }

  /** The same method with `numReturns` or `name` changed for calls made through the result. */
  options<M extends number = N>(opts: MethodOptions & { numReturns?: M }): ActorMethod<A, R, M> {
    const o = validateMethodOptions(opts, `${this.info.className}.${this.method}.options()`);
    return new ActorMethod(this.info, this.method, { ...this.opts, ...o });
  }
}

/** The methods of actor class instance T, each callable with `.remote()`. */
export type ActorMethods<T> = {
  [K in keyof T as K extends keyof ActorHandleCore | keyof Object ? never : T[K] extends (...a: any[]) => any ? K : never]:
    T[K] extends (...a: infer A) => infer R ? ActorMethod<A, Awaited<R>> : never;
};

/** A handle to an actor of class T: `handle.method.remote(...)` is typed from T. */
export type ActorHandle<T = unknown> = ActorHandleCore & ActorMethods<T>;
export const ActorHandle = ActorHandleCore;

