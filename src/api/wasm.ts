/**
 * `warren.wasm(bytesOrPath, { imports })`: a WebAssembly module whose exported functions are
 * remote functions. The bytes are put in the object store once per runtime (by content hash) on
 * the first call; workers compile them once (worker/wasm.ts), so a node without the file runs it.
 */
import * as fs from "node:fs";
import { createHash } from "node:crypto";
import { types } from "node:util";
import { WarrenError } from "../errors";
import type { ObjectRef } from "../objects/ref";
import { currentRuntime } from "../core/current";
import { WASM_RUNNER, WasmCall, checkImports } from "../worker/wasm";
import { RemoteFunction } from "./remote";

export interface WasmOptions {
  /** Imports granted to the module, from the allow-list: `env.memory`, `env.log`, `env.abort`, `Math.<fn>`. @default [] */
  imports?: string[];
  /** Initial pages (64 KiB each) of an imported `env.memory`. @default 256 */
  memoryPages?: number;
}

export type WasmExports = Readonly<Record<string, RemoteFunction<any[], any>>>;

/** Per runtime, so a new init() puts again: hash -> the bytes' ref. */
const stored = new WeakMap<object, Map<string, ObjectRef<Uint8Array>>>();

export function wasm(bytesOrPath: string | Uint8Array | ArrayBuffer, opts: WasmOptions = {}): WasmExports {
  const bytes = bytesOf(bytesOrPath);
  const what = typeof bytesOrPath === "string" ? `the WebAssembly module ${bytesOrPath}` : "the WebAssembly module";
  let module: WebAssembly.Module;
  try {
    module = new WebAssembly.Module(bytes);
  } catch (err) {
    throw new WarrenError(`warren.wasm(): ${what} is not valid WebAssembly: ${(err as Error).message}`, { cause: err });
  }
  const imports = opts.imports ?? [];
  checkImports(module, imports, `warren.wasm(): ${what}`);
  const hash = createHash("sha256").update(bytes).digest("hex");
  const call = (name: string) => (): unknown[] => {
    const rt = currentRuntime();
    const refs = stored.get(rt) ?? new Map<string, ObjectRef<Uint8Array>>();
    stored.set(rt, refs);
    let ref = refs.get(hash);
    if (!ref) refs.set(hash, (ref = rt.put(bytes) as ObjectRef<Uint8Array>));
    const c: WasmCall = { hash, bytes: ref, imports, memoryPages: opts.memoryPages ?? 256, name };
    return [c];
  };
  const exports: Record<string, RemoteFunction<any[], any>> = {};
  for (const e of WebAssembly.Module.exports(module)) {
    if (e.kind === "function" && e.name !== "alloc") {
      exports[e.name] = new RemoteFunction({ ...WASM_RUNNER, name: e.name }, {}, call(e.name));
    }
  }
  return Object.freeze(exports);
}

function bytesOf(source: unknown): Uint8Array {
  if (typeof source === "string") {
    try {
      return fs.readFileSync(source);
    } catch (err) {
      throw new WarrenError(`warren.wasm(): cannot read ${source} (${(err as Error).message}); pass the path of a .wasm file or its bytes`, { cause: err });
    }
  }
  if (types.isUint8Array(source)) return Uint8Array.from(source); // a copy: the caller may change theirs
  if (types.isArrayBuffer(source)) return new Uint8Array(source.slice(0));
  throw new WarrenError(`warren.wasm() takes a .wasm file's path, a Uint8Array/Buffer or an ArrayBuffer; got ${source === null ? "null" : typeof source}`);
}
