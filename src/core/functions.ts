/**
 * core: the function table. Remote functions and actor classes are registered by where they are
 * defined: the module file that called `remote()` / `@actor` and the order of that call in the
 * module. A worker `require`s the same file (a `.ts` file through tsx) and finds the same entry:
 * no code ever travels in a message, and nothing from a message is evaluated.
 */
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { WarrenError } from "../errors";
import type { Descriptor } from "../wire/descriptors";

const byModule = new Map<string, unknown[]>();
/** warren's own frames between a user's module and `register`: the API's and the core's. */
const OWN_DIRS = [path.join(__dirname, "..", "api") + path.sep, __dirname + path.sep];
/** Decorator helpers that may stand between a module and `@actor` (swc uses Reflect.decorate). */
const DECORATOR_HELPERS = /[\\/]node_modules[\\/](reflect-metadata|tslib|@swc[\\/]helpers|@babel[\\/]runtime)[\\/]/;

/** `module` is the defining file, or `warren:<name>` for warren's own code that every worker registers at start. */
export function register(target: unknown, name: string, module = callerModule()): Descriptor {
  const list = byModule.get(module) ?? [];
  byModule.set(module, list);
  list.push(target);
  return { module, index: list.length - 1, name };
}

/** Loads the defining module (once) and returns what it registered at `index`. */
export function resolve(d: Descriptor): unknown {
  if (!byModule.has(d.module)) {
    try {
      require(d.module);
    } catch (err) {
      throw new WarrenError(`worker could not load ${d.module} (defining ${d.name}): ${(err as Error).message}`, { cause: err });
    }
  }
  const target = byModule.get(d.module)?.[d.index];
  if (target === undefined) {
    throw new WarrenError(
      `${d.name} is not registered at position ${d.index} of ${d.module} in the worker. Call ` +
        "warren.remote() and @warren.actor only at the top level of a module, in the same order every time it loads.",
    );
  }
  return target;
}

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
