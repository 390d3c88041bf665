// The native example's build step: compiles the AssemblyScript kernels with `asc` (a
// devDependency) into examples/native/build/. Nothing prebuilt is committed.
import { spawnSync } from "node:child_process";
import * as path from "node:path";

export const BUILD = path.join(__dirname, "build");

/** Compiles assembly/<name>.ts to build/<name>.wasm and returns its path. */
export function compileAssemblyScript(name: string): string {
  const out = path.join(BUILD, `${name}.wasm`);
  const asc = require.resolve("assemblyscript/bin/asc.js");
  const r = spawnSync(process.execPath, [asc, path.join(__dirname, "assembly", `${name}.ts`), "-o", out, "-O3", "--runtime", "stub"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`asc could not compile assembly/${name}.ts (exit ${r.status}): ${r.stderr}`);
  return out;
}
