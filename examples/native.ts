// Compiled code as remote functions (the seed's "Cython Code in Ray"): AssemblyScript kernels
// compiled by asc at the start of this example, shipped to workers by warren.wasm() through the
// object store, and the same kernels as an actor's methods.
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as warren from "warren";
import { ADDON, BUILD, buildAddon, compileAssemblyScript } from "./native/build";

const kernelsFile = path.join(BUILD, "kernels.wasm");
// The driver builds the addon; its workers (on this machine) load what it built.
const whyNoAddon = require.main === module ? buildAddon() : undefined;
interface Addon {
  fib(n: number): number;
  dot(a: Float64Array, b: Float64Array): number;
}
const addon: Addon | undefined = fs.existsSync(ADDON) ? require(ADDON) : undefined;
/** Any function is a remote function, an addon's included (registered here, at the top level). */
const addonFib = addon && warren.remote({ name: "addon_fib" }, addon.fib);
const addonDot = addon && warren.remote({ name: "addon_dot" }, addon.dot);

interface Kernels {
  add(a: number, b: number): number;
  fib(n: number): number;
  dot(a: number, n: number, b: number, m: number): number;
  alloc(bytes: number): number;
  memory: { buffer: ArrayBuffer };
}

/** An actor holding its own instance of the kernels, built from the file beside this module. */
@warren.actor({ numCpus: 0 })
export class KernelActor extends warren.Actor {
  private k = new WebAssembly.Instance(new WebAssembly.Module(fs.readFileSync(kernelsFile)), {
    env: { abort: () => { throw new Error("kernel aborted"); } },
  }).exports as unknown as Kernels;

  fib(n: number): number {
    return this.k.fib(n);
  }

  addonDot(a: Float64Array, b: Float64Array): number {
    if (!addon) throw new Error("the Node-API addon is not built on this node");
    return addon.dot(a, b);
  }

  /** The marshalling convention by hand: one copy of each array into memory at alloc(). */
  dot(a: Float64Array, b: Float64Array): number {
    const [pa, pb] = [a, b].map((v) => {
      const p = this.k.alloc(v.byteLength);
      new Float64Array(this.k.memory.buffer, p, v.length).set(v);
      return p;
    });
    return this.k.dot(pa, a.length, pb, b.length);
  }
}

async function main(): Promise<void> {
  compileAssemblyScript("kernels");
  // wasm() may be called anywhere: its functions are found by the module's hash, not by place.
  const kernels = warren.wasm(kernelsFile, { imports: ["env.abort"] });
  await warren.init({ numCpus: 2 });
  console.log(`kernels exported as remote functions: ${Object.keys(kernels).join(", ")}`);
  const sum = await warren.get(kernels.add.remote(2, 40));
  console.log(`add.remote(2, 40) -> ${sum}`);
  assert.equal(sum, 42);
  console.log(`fib.remote(80) -> ${await warren.get(kernels.fib.remote(80))}`);
  const n = 1_000_000;
  const a = new Float64Array(n).fill(0.5);
  const b = new Float64Array(n).map((_, i) => i % 4);
  const [ra, rb] = [warren.put(a), warren.put(b)]; // 8 MB each: through the object store
  const dot = await warren.get(kernels.dot.remote(ra, rb));
  console.log(`dot.remote(put(a), put(b)) over ${n} doubles -> ${dot}`);
  assert.equal(dot, 0.5 * 1.5 * n);
  const actor = KernelActor.remote();
  console.log(`actor fib.remote(80) -> ${await warren.get(actor.fib.remote(80))}`);
  const actorDot = await warren.get(actor.dot.remote(ra, rb));
  console.log(`actor dot.remote(put(a), put(b)) -> ${actorDot}`);
  assert.equal(actorDot, dot);
  if (addonFib && addonDot) {
    console.log(`Node-API addon_fib.remote(80) -> ${await warren.get(addonFib.remote(80))}`);
    const addonResult = await warren.get(addonDot.remote(ra, rb));
    console.log(`Node-API addon_dot.remote(put(a), put(b)) -> ${addonResult}`);
    assert.equal(addonResult, dot);
    console.log(`actor addonDot.remote(put(a), put(b)) -> ${await warren.get(actor.addonDot.remote(ra, rb))}`);
  } else {
    console.log(`Node-API part skipped: ${whyNoAddon}`);
  }
  try {
    warren.wasm(compileAssemblyScript("forbidden"));
  } catch (err) {
    console.log(`a module importing env.readFile is refused: ${(err as Error).message.split(" A shipped")[0]}`);
  }
  await warren.shutdown();
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
