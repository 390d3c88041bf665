/**
 * Compiled code's cases: a dot product of 1M doubles (8 MB per array, through the object store)
 * computed in the driver without warren, as a JavaScript task and as a WebAssembly task
 * (warren.wasm, the AssemblyScript kernel of examples/native) and as a Node-API task (the
 * example's addon, where a C++ compiler is found), so the task's overhead shows beside
 * the kernel's own speed. The arrays are put once per case; each op is one task and its get.
 */
import * as warren from "warren";
import type { Case } from "./cases";
import type { Context } from "./context";
import { ADDON, buildAddon, compileAssemblyScript } from "../examples/native/build";
import { dotJs, dotTask } from "./workload";

const N = 1_000_000;
const GET_TIMEOUT = 30;

function arrays(): [Float64Array, Float64Array] {
  return [new Float64Array(N).map((_, i) => i % 3), new Float64Array(N).map((_, i) => 1 / (1 + (i % 5)))];
}

async function onWarren(ctx: Context, call: (a: warren.ObjectRef<Float64Array>, b: warren.ObjectRef<Float64Array>) => warren.ObjectRef<number>) {
  await ctx.warren();
  const [a, b] = arrays().map((v) => warren.put(v));
  return { op: () => warren.get(call(a, b), { timeout: GET_TIMEOUT }), multiplier: 1 };
}

/** The addon's dot, loaded when first called: it is built by the case's setup, after this module loads. */
const napiDot = warren.remote(function dot_napi(a: Float64Array, b: Float64Array): number {
  return require(ADDON).dot(a, b);
});

export const NATIVE_CASES: Case[] = [
  {
    name: "dot_1m_driver_js", kind: "warren", unit: "ops/s",
    what: "a dot product of 1M doubles in the driver, plain JavaScript, no warren",
    async setup() {
      const [a, b] = arrays();
      return { op: () => dotJs(a, b), multiplier: 1 };
    },
  },
  {
    name: "dot_1m_js_task", kind: "warren", unit: "ops/s",
    what: "get(dot_js.remote(put(a), put(b))): 1M doubles each, read from the node's LMDB",
    setup: (ctx) => onWarren(ctx, (a, b) => dotTask.remote(a, b)),
  },
  {
    name: "dot_1m_wasm_task", kind: "warren", unit: "ops/s",
    what: "the same as a WebAssembly task (warren.wasm, AssemblyScript -O3), arrays copied into its memory",
    async setup(ctx) {
      const kernels = warren.wasm(compileAssemblyScript("kernels"), { imports: ["env.abort"] });
      return onWarren(ctx, (a, b) => kernels.dot.remote(a, b));
    },
  },
  {
    name: "dot_1m_napi_task", kind: "warren", unit: "ops/s",
    what: "the same as a Node-API addon's task (C++ -O3), reading the decoded arrays in place",
    async setup(ctx) {
      const why = buildAddon();
      if (why) throw new Error(why);
      return onWarren(ctx, (a, b) => napiDot.remote(a, b));
    },
  },
];
