/**
 * core: the function table. Remote functions and actor classes are registered by where they are
 * defined: the module file that called `remote()` / `@actor` and the order of that call in the
 * module. A worker loads the same file (`require` for CommonJS, `import()` for an ES module, a
 * `.ts` file through tsx) and finds the same entry: no code ever travels in a message, and
 * nothing from a message is evaluated. A program needs no main guard: `init()` reached while a
 * worker loads its module never resolves there, so what follows it runs only in the driver.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { WarrenError } from "../errors";
import { findUserErrorClasses } from "../serialization";
import type { Descriptor } from "../wire/descriptors";

const byModule = new Map<string, unknown[]>();
/** The exports of the ES modules in byModule that have been evaluated (CommonJS ones are in require.cache). */
const namespaces = new Map<string, object>();
/** warren's own frames between a user's module and `register`: the API's and the core's. */
const OWN_DIRS = [path.join(__dirname, "..", "api") + path.sep, __dirname + path.sep];
/** Decorator helpers that may stand between a module and `@actor` (swc uses Reflect.decorate). */
const DECORATOR_HELPERS = /[\\/]node_modules[\\/](reflect-metadata|tslib|@swc[\\/]helpers|@babel[\\/]runtime)[\\/]/;

/** `module` is the defining file, or `warren:<name>` for warren's own code that every worker registers at start. */
export function register(target: unknown, name: string, module = callerModule()): Descriptor {
  const list = byModule.get(module) ?? [];
  if (list.length === 0 && isEsModule(module)) {
    // Its exports, once it has been evaluated (a module still at a top-level await is not yet): for exportedErrorClass.
    import(pathToFileURL(module).href).then((ns: object) => namespaces.set(module, ns), () => undefined);
  }
  byModule.set(module, list);
  list.push(target);
  return { module, index: list.length - 1, name };
}

/** Modules loaded here, or being imported (an ES module). */
const loads = new Map<string, Promise<void> | "loaded">();
/** Modules being loaded now, each with what ends its load early should it reach init() (a top-level await). */
const loading = new Map<string, () => void>();
/** tsx's ES module loader, imported only when a TypeScript ES module is: it costs a worker about 80 ms and 35 MB. */
let tsxEsm: Promise<unknown> | undefined;

/**
 * Loads the module defining `d` once, so that resolve() finds it: `require` for CommonJS, at
 * once; `import()` for an ES module, a promise until its registrations are done (the module has
 * been evaluated, or it reached init()).
 */
export function load(d: Descriptor): Promise<void> | undefined {
  const state = loads.get(d.module);
  if (state === "loaded") return undefined;
  if (state) return state;
  if (byModule.has(d.module)) {
    // Registered already: by a module this one loaded, or by warren itself (worker/wasm.ts).
    loads.set(d.module, "loaded");
    return undefined;
  }
  if (!isEsModule(d.module)) {
    loading.set(d.module, () => undefined);
    try {
      require(d.module);
    } catch (err) {
      throw couldNotLoad(d, err);
    } finally {
      loading.delete(d.module);
    }
    loads.set(d.module, "loaded");
    return undefined;
  }
  const imported = new Promise<void>((done, fail) => {
    loading.set(d.module, done);
    const loader = /\.[mc]?tsx?$/.test(d.module) ? (tsxEsm ??= import(pathToFileURL(require.resolve("tsx")).href)) : Promise.resolve();
    loader.then(() => import(pathToFileURL(d.module).href)).then(() => done(), (err) => fail(couldNotLoad(d, err)));
  }).then(
    () => void loads.set(d.module, "loaded"),
    (err) => {
      loads.delete(d.module); // tried again by the next task, as require would be
      throw err;
    },
  ).finally(() => loading.delete(d.module));
  loads.set(d.module, imported);
  return imported;
}

/**
 * init() was called in a worker: true if a module load is under way (the program's own init,
 * reached as the worker loads it), whose registrations are then complete.
 */
export function reachedInit(): boolean {
  if (loading.size === 0) return false;
  let caller: string | undefined;
  try {
    caller = callerModule();
  } catch {
    caller = undefined;
  }
  const own = caller !== undefined ? loading.get(caller) : undefined;
  if (own) own();
  else for (const done of loading.values()) done();
  return true;
}

function couldNotLoad(d: Descriptor, err: unknown): WarrenError {
  return new WarrenError(`worker could not load ${d.module} (defining ${d.name}): ${(err as Error).message}`, { cause: err });
}

/** Node's rule: .mjs/.mts are ES modules, .cjs/.cts CommonJS, others as the nearest package.json's "type" says. */
function isEsModule(file: string): boolean {
  if (/\.m[jt]s$/.test(file)) return true;
  if (/\.c[jt]s$/.test(file)) return false;
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, "package.json");
    if (fs.existsSync(pkg)) {
      try {
        return JSON.parse(fs.readFileSync(pkg, "utf8")).type === "module";
      } catch {
        return false;
      }
    }
    if (path.dirname(dir) === dir) return false;
  }
}

/** What the module defining `d` registered at `d.index` (load() has loaded it). */
export function resolve(d: Descriptor): unknown {
  if (!loads.has(d.module)) load(d);
  const target = byModule.get(d.module)?.[d.index];
  if (target === undefined) {
    throw new WarrenError(
      `${d.name} is not registered at position ${d.index} of ${d.module} in the worker. Call ` +
        "warren.remote() and @warren.actor only at the top level of a module, in the same order every time it loads.",
    );
  }
  return target;
}

/**
 * A user's Error subclass named `className`, exported by a module that registered remote
 * functions or actors in this process: a task's error then comes back as an instance of it. An
 * ES module counts once evaluated: a program's main module at a top-level await is not yet.
 */
function exportedErrorClass(className: string): (new (...a: any[]) => Error) | undefined {
  for (const file of byModule.keys()) {
    const exports: unknown = require.cache[file]?.exports ?? namespaces.get(file);
    if (!exports || typeof exports !== "object") continue;
    for (const v of Object.values(exports)) {
      if (typeof v === "function" && v.name === className && v.prototype instanceof Error) return v as new (...a: any[]) => Error;
    }
  }
  return undefined;
}
findUserErrorClasses(exportedErrorClass);

/** The first stack frame outside warren's API and core and decorator helpers: the module registering something. */
function callerModule(): string {
  const saved = Error.prepareStackTrace;
  Error.prepareStackTrace = (_e, frames) => frames;
  const holder: { stack?: NodeJS.CallSite[] } = {};
  Error.captureStackTrace(holder);
  const frames = holder.stack ?? [];
  Error.prepareStackTrace = saved;
  for (const frame of frames) {
    const file = frame.getFileName();
    if (!file || file.startsWith("node:") || OWN_DIRS.some((d) => file.startsWith(d)) || DECORATOR_HELPERS.test(file)) continue;
    return file.startsWith("file://") ? fileURLToPath(file) : file;
  }
  throw new WarrenError("cannot tell which module called warren.remote(): call it at the top level of a module file");
}
