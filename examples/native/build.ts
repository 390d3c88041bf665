// The native example's build step: compiles the AssemblyScript kernels with `asc` (a
// devDependency) into examples/native/build/. Nothing prebuilt is committed.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
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

export const ADDON = path.join(__dirname, "addon", "build", "Release", "kernels.node");

/**
 * Builds the Node-API addon with node-gyp; returns why not when no C++ compiler is found (then
 * the WebAssembly part still runs). Uses this Node's own headers when they are installed.
 */
export function buildAddon(): string | undefined {
  const cxx = process.env.CXX ?? "g++";
  if (spawnSync(cxx, ["--version"]).status !== 0) {
    return `no C++ compiler (${cxx}) found: install one (Debian/Ubuntu: apt-get install g++ make python3) to build the Node-API addon`;
  }
  const prefix = path.dirname(path.dirname(process.execPath));
  const nodedir = fs.existsSync(path.join(prefix, "include", "node", "node_api.h")) ? [`--nodedir=${prefix}`] : [];
  const gyp = require.resolve("node-gyp/bin/node-gyp.js");
  const r = spawnSync(process.execPath, [gyp, "rebuild", ...nodedir], { cwd: path.join(__dirname, "addon"), encoding: "utf8" });
  if (r.status !== 0) return `node-gyp could not build the addon (exit ${r.status}): ${r.stderr.slice(-2000)}`;
  return undefined;
}
