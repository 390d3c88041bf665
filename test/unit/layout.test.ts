// The shape of the source tree (docs/architecture.md): files small enough to read, no runtime
// import cycle, and no layer reaching up into one above it. Imports are read from the source
// text; `import type` and `export type` are erased by the compiler and do not count as runtime
// imports, but do count when a lower layer names a higher one.
import * as fs from "node:fs";
import * as path from "node:path";

const ROOT = path.join(__dirname, "..", "..");
const SRC = path.join(ROOT, "src");

function filesUnder(dir: string, ext: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? filesUnder(p, ext) : p.endsWith(ext) ? [p] : [];
  });
}

const lines = (file: string) => fs.readFileSync(file, "utf8").split("\n").length - 1;
const rel = (file: string) => path.relative(SRC, file);

interface Import {
  target: string;
  typeOnly: boolean;
}

/** The relative imports of a source file, resolved to files. */
function importsOf(file: string): Import[] {
  const text = fs.readFileSync(file, "utf8");
  const out: Import[] = [];
  const re = /^(?:import|export)\s+(type\s+)?(?:[^"';]*?\s+from\s+)?"(\.[^"]+)"/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const base = path.resolve(path.dirname(file), m[2]);
    const target = [`${base}.ts`, path.join(base, "index.ts")].find((f) => fs.existsSync(f));
    if (!target) throw new Error(`${rel(file)} imports ${m[2]}, which is not a file under src/`);
    out.push({ target, typeOnly: m[1] !== undefined });
  }
  return out;
}

const sources = filesUnder(SRC, ".ts");
const graph = new Map(sources.map((f) => [f, importsOf(f)]));

/** The part a file belongs to: its folder under src/, or the file itself at the top. */
const partOf = (file: string) => rel(file).split(path.sep)[0].replace(/\.ts$/, "");

/** Lowest first; a part may import only from parts of a lower or equal rank (see docs/architecture.md). */
const RANK: Record<string, number> = {
  errors: 0, address: 0, bounded: 0, accelerators: 0, serialization: 0, options: 0, scheduling: 0, lifecycle: 0, wire: 0,
  transport: 1, objects: 1,
  core: 2, head: 2, node: 2,
  worker: 3, coordination: 3,
  api: 4, testing: 4, index: 5, cli: 5,
};

test("every part of src/ has a rank in the layer table", () => {
  expect([...new Set(sources.map(partOf))].filter((p) => RANK[p] === undefined)).toEqual([]);
});

test("no file under src/ is over 500 lines", () => {
  expect(sources.filter((f) => lines(f) > 500).map((f) => `${rel(f)}: ${lines(f)}`)).toEqual([]);
});

test("no bench file is over 450 lines, and no shell script in broker/ over 80", () => {
  const bench = filesUnder(path.join(ROOT, "bench"), "").filter((f) => /\.(ts|js)$/.test(f));
  expect(bench.filter((f) => lines(f) > 450)).toEqual([]);
  expect(filesUnder(path.join(ROOT, "broker"), ".sh").filter((f) => lines(f) > 80)).toEqual([]);
});

test("no runtime import cycle under src/", () => {
  // Tarjan's strongly connected components over runtime imports.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    for (const { target: w, typeOnly } of graph.get(v)!) {
      if (typeOnly) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      component.push(rel(w));
    } while (w !== v);
    if (component.length > 1) cycles.push(component);
  };
  for (const f of sources) if (!index.has(f)) visit(f);
  expect(cycles).toEqual([]);
});

test("no part imports from a part above it, not even its types", () => {
  const upward: string[] = [];
  for (const [file, imports] of graph) {
    for (const { target } of imports) {
      if (RANK[partOf(target)] > RANK[partOf(file)]) upward.push(`${rel(file)} -> ${rel(target)}`);
    }
  }
  expect(upward).toEqual([]);
});

test("the test's reading of imports sees type-only and runtime imports apart", () => {
  const runtime = graph.get(path.join(SRC, "core", "runtime.ts"))!;
  expect(runtime).toContainEqual({ target: path.join(SRC, "core", "objects.ts"), typeOnly: false });
  const objects = graph.get(path.join(SRC, "core", "objects.ts"))!;
  expect(objects).toContainEqual({ target: path.join(SRC, "core", "runtime.ts"), typeOnly: true });
});
