/** `remote(fn)`: a function turned into a task that runs on a worker, with `.remote()` and `.options()`. */
import { WarrenError } from "../errors";
import { TaskOptions, definitionOptions, mergeOptions, validateTaskOptions } from "../options";
import { shapeKey, taskDemand } from "../scheduling/shape";
import { register } from "../core/functions";
import type { Descriptor } from "../wire/descriptors";
import { currentRuntime } from "../core/current";
import type { RemoteArgs, ReturnRefs, TaskTemplate } from "../core/template";

export class RemoteFunction<A extends unknown[], R, N extends number = 1> {
  private template?: TaskTemplate;

  /** @internal */
  constructor(
    private readonly desc: Descriptor,
    private readonly opts: Readonly<TaskOptions>,
    /** Arguments put before the caller's on every call (a shipped WebAssembly module's, api/wasm.ts). */
    private readonly leading?: () => unknown[],
  ) {}

  /** Submits a call and returns at once with ref(s) to its result. */
  remote(...args: RemoteArgs<A>): ReturnRefs<Awaited<R>, N> {
    const t = (this.template ??= templateOf(this.desc, this.opts));
    const refs = currentRuntime().submit(t, this.leading ? [...this.leading(), ...args] : args);
    return (t.numReturns === 1 ? refs[0] : t.numReturns === 0 ? undefined : refs) as ReturnRefs<Awaited<R>, N>;
  }

  /** The same function with options changed for the calls made through the result. */
  options<M extends number = N>(opts: TaskOptions & { numReturns?: M }): RemoteFunction<A, R, M> {
    return new RemoteFunction(this.desc, mergeOptions(this.opts, validateTaskOptions(opts, `${this.desc.name}.options()`)), this.leading);
  }

  toString(): string {
    return `RemoteFunction(${this.desc.name})`;
  }
}

function templateOf(fn: Descriptor, o: Readonly<TaskOptions>): TaskTemplate {
  return {
    fn,
    name: o.name ?? fn.name,
    shape: shapeKey(taskDemand(o)),
    numReturns: o.numReturns ?? 1,
    maxRetries: o.maxRetries ?? 3,
    retryExceptions: o.retryExceptions ?? false,
  };
}

type AnyFn = (...args: any[]) => unknown;

/**
 * Makes `fn` a remote function. Call at the top level of a module: workers load that module by
 * path and find the function by its place there.
 */
export function remote<F extends AnyFn>(fn: F): RemoteFunction<Parameters<F>, ReturnType<F>>;
export function remote<F extends AnyFn>(options: TaskOptions, fn: F): RemoteFunction<Parameters<F>, ReturnType<F>>;
export function remote(a: unknown, b?: unknown): RemoteFunction<unknown[], unknown> {
  const [opts, fn] = typeof a === "function" ? [{}, a] : [a, b];
  if (typeof fn !== "function") {
    throw new WarrenError("warren.remote() takes a function, or an options object and a function (for classes use @warren.actor)");
  }
  const name = fn.name || "anonymous";
  const validated = definitionOptions(opts, validateTaskOptions, `options of remote(${name})`);
  const rf = new RemoteFunction(register(fn, name), validated);
  callableByName(fn as AnyFn, rf);
  return rf;
}

/**
 * Gives `fn` itself `.remote` and `.options`: inside `remote(async function fib() { ... })` the
 * name `fib` is that function, not the RemoteFunction it was made into, so a function calling
 * itself by its own name needs them (untyped: TypeScript types that name as the bare function).
 * A function registered twice keeps those of its first registration; a frozen one gets none.
 */
function callableByName(fn: AnyFn, rf: RemoteFunction<unknown[], unknown>): void {
  if (!Object.isExtensible(fn) || Object.hasOwn(fn, "remote") || Object.hasOwn(fn, "options")) return;
  Object.defineProperties(fn, { remote: { value: rf.remote.bind(rf) }, options: { value: rf.options.bind(rf) } });
}
