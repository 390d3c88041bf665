/**
 * worker: runs exports of WebAssembly modules shipped by `warren.wasm()` (api/wasm.ts).
 *
 * The boundary: this file is warren's own module, loaded by path like any remote function's
 * module; the only thing taken from a message is the module's bytes (fetched from the object
 * store by ref), which are compiled, never evaluated as JavaScript. The instance gets only the
 * imports its caller granted from IMPORTS, none of which reach the file system, the network or
 * the process: WebAssembly code has no ambient authority beyond them.
 *
 * Invariant: one compile per module hash per worker (`compiled`); a new instance per call, so a
 * call never sees another's memory.
 */
import { types } from "node:util";
import { WarrenError } from "../errors";
import { ObjectRef } from "../objects/ref";
import { register } from "../core/functions";
import { currentRuntime } from "../core/current";

// Node 20's WebAssembly, as far as warren uses it (@types/node 20 and lib ES2023 leave it out).
declare global {
  namespace WebAssembly {
    interface Descriptor { module?: string; name: string; kind: string }
    class Module {
      constructor(bytes: Uint8Array);
      static imports(m: Module): Required<Descriptor>[];
      static exports(m: Module): Descriptor[];
    }
    class Memory {
      constructor(d: { initial: number; maximum?: number });
      readonly buffer: ArrayBuffer;
    }
    type ImportValue = Memory | ((...a: any[]) => unknown);
    type Exports = Record<string, unknown>;
    class Instance {
      constructor(m: Module, imports: Record<string, Record<string, ImportValue>>);
      readonly exports: Exports;
    }
    function compile(bytes: Uint8Array): Promise<Module>;
  }
}

/** The imports a module may be given (`module.name`), and what each is. */
export const IMPORTS: Record<string, (grant: Grant) => WebAssembly.ImportValue> = {
  "env.log": () => (value: number) => console.log(String(value)),
  "env.abort": () => (_msg: number, _file: number, line: number, column: number) => {
    throw new WarrenError(`the WebAssembly module aborted at line ${line}, column ${column}`);
  },
  "env.memory": (g) => (g.memory ??= new WebAssembly.Memory({ initial: g.memoryPages })),
  ...Object.fromEntries(
    Object.getOwnPropertyNames(Math)
      .filter((k) => typeof (Math as any)[k] === "function")
      .map((k) => [`Math.${k}`, () => (Math as any)[k]]),
  ),
};

interface Grant {
  memory?: WebAssembly.Memory;
  memoryPages: number;
}

/** What a task of a shipped export carries before the user's arguments. */
export interface WasmCall {
  hash: string;
  /** The module's bytes in the object store; nested in this object so they are fetched only on a cache miss. */
  bytes: ObjectRef<Uint8Array>;
  imports: string[];
  memoryPages: number;
  name: string;
}

/** Checks a module's imports against those granted, and these against the allow-list. */
export function checkImports(module: WebAssembly.Module, granted: string[], what: string): void {
  const allowed = Object.keys(IMPORTS);
  const notAllowed = granted.filter((g) => !allowed.includes(g));
  const asked = WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}`);
  const missing = [...notAllowed, ...asked.filter((a) => !granted.includes(a) || notAllowed.includes(a))];
  if (missing.length === 0) return;
  throw new WarrenError(
    `${what} imports ${[...new Set(missing)].join(", ")}, which ${missing.length === 1 ? "is" : "are"} not ` +
      `${notAllowed.length ? "on the allow-list" : "granted"}. A shipped module may import only what its caller names in ` +
      `{ imports } from this allow-list: env.memory, env.log, env.abort, Math.<function> (${allowed.filter((a) => a.startsWith("Math.")).length} of them).`,
  );
}

const compiled = new Map<string, WebAssembly.Module>();
/** Compiles per worker, for tests and the example. */
export const wasmStats = { compiles: 0 };

async function moduleOf(call: WasmCall): Promise<WebAssembly.Module> {
  const known = compiled.get(call.hash);
  if (known) return known;
  const [bytes] = (await currentRuntime().get([call.bytes])) as [Uint8Array];
  const module = await WebAssembly.compile(bytes);
  wasmStats.compiles++;
  compiled.set(call.hash, module);
  return module;
}

function instantiate(module: WebAssembly.Module, call: WasmCall): WebAssembly.Exports {
  const grant: Grant = { memoryPages: call.memoryPages };
  const imports: Record<string, Record<string, WebAssembly.ImportValue>> = {};
  for (const name of call.imports) {
    const dot = name.indexOf(".");
    (imports[name.slice(0, dot)] ??= {})[name.slice(dot + 1)] = IMPORTS[name](grant);
  }
  return new WebAssembly.Instance(module, imports).exports;
}

/**
 * The marshalling convention: a typed array or Buffer argument is copied once into the
 * instance's memory at `alloc(byteLength)` (an export the module must have) and passed as two
 * parameters, its pointer and its length in elements. Other arguments pass as they are.
 */
function marshal(exports: WebAssembly.Exports, args: unknown[], name: string): unknown[] {
  const out: unknown[] = [];
  for (const arg of args) {
    if (!types.isTypedArray(arg)) {
      out.push(arg);
      continue;
    }
    const alloc = exports.alloc;
    const memory = exports.memory;
    if (typeof alloc !== "function" || !(memory instanceof WebAssembly.Memory)) {
      throw new WarrenError(`${name} was given a ${arg.constructor.name}, but its module exports no alloc(bytes) function and memory to copy it into; export both (see README, "Compiled code")`);
    }
    const ptr = (alloc as (n: number) => number)(arg.byteLength);
    new Uint8Array(memory.buffer, ptr, arg.byteLength).set(new Uint8Array(arg.buffer, arg.byteOffset, arg.byteLength));
    out.push(ptr, arg.length);
  }
  return out;
}

/** The one registered function every shipped export runs as. */
async function runWasm(call: WasmCall, ...args: unknown[]): Promise<unknown> {
  const exports = instantiate(await moduleOf(call), call);
  const fn = exports[call.name];
  if (typeof fn !== "function") throw new WarrenError(`the WebAssembly module has no exported function ${call.name}`);
  return (fn as (...a: unknown[]) => unknown)(...marshal(exports, args, call.name));
}

/** How a driver names `runWasm` in its tasks. */
export const WASM_RUNNER = register(runWasm, "wasm", "warren:wasm");
