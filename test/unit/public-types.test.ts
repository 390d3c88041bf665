// The package's public type declarations reach no dependency's types: a consumer compiling with
// settings of its own (--exactOptionalPropertyTypes, say) must not type-check xstate's or
// amqplib's declarations. Walks the built .d.ts files from each entry point (npm test builds first).
import * as fs from "node:fs";
import * as path from "node:path";

const root = path.join(__dirname, "..", "..");
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
const entries: string[] = Object.values(pkg.exports as Record<string, { types?: string }>).flatMap((e) => (e.types ? [path.join(root, e.types)] : []));
/** warren itself (warren/actors imports it), and reflect-metadata: a side-effect import that only declares `Reflect.metadata`. */
const ALLOWED = new Set(["warren", "reflect-metadata"]);
const specifier = /(?:from\s+|import\s*\(\s*|import\s+)["']([^"']+)["']/g;

/** `./x` is `x.d.ts` or `x/index.d.ts`. */
function declarationOf(base: string): string {
  const file = [`${base}.d.ts`, path.join(base, "index.d.ts")].find((f) => fs.existsSync(f));
  if (!file) throw new Error(`no declaration for ${base}`);
  return file;
}

test("the public .d.ts files import only each other and node's types", () => {
  expect(entries.length).toBeGreaterThanOrEqual(4);
  const seen = new Set<string>();
  const foreign = new Map<string, string>();
  const todo = [...entries];
  while (todo.length) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const [, spec] of fs.readFileSync(file, "utf8").matchAll(specifier)) {
      if (spec.startsWith(".")) todo.push(declarationOf(path.resolve(path.dirname(file), spec)));
      else if (!spec.startsWith("node:") && !ALLOWED.has(spec)) foreign.set(spec, path.relative(root, file));
    }
  }
  expect(Object.fromEntries(foreign)).toEqual({});
});
