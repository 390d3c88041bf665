// warren as users install it: the packed tarball, unpacked into a fresh project beside the
// dependencies it declares (linked from this checkout's node_modules, so no network is needed).
// An ES module program with top-level await and no main guard, a CommonJS one in plain
// JavaScript, and the consumer's type check under three module resolutions.
import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const ROOT = path.join(__dirname, "..", "..");
const project = fs.mkdtempSync(path.join(os.tmpdir(), "warren-consumer-"));
const modules = path.join(project, "node_modules");
const installed = path.join(modules, "warren");

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: project, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }));
  });
}

beforeAll(() => {
  // npm test has built dist/; packing without scripts does not build again.
  const tarball = execFileSync("npm", ["pack", "--ignore-scripts", "--silent", "--pack-destination", project], { cwd: ROOT, encoding: "utf8" }).trim().split("\n").pop()!;
  fs.mkdirSync(installed, { recursive: true });
  execFileSync("tar", ["xzf", path.join(project, tarball), "-C", installed, "--strip-components", "1"]);
  for (const dep of fs.readdirSync(path.join(ROOT, "node_modules"))) {
    if (dep !== ".bin" && dep !== "warren") fs.symlinkSync(path.join(ROOT, "node_modules", dep), path.join(modules, dep));
  }
  fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true }));
}, 60_000);
afterAll(() => fs.rmSync(project, { recursive: true, force: true }));

test("the tarball ships the license, the contract, the broker script and maps with their sources, and no TypeScript sources", () => {
  for (const f of ["LICENSE", "docs/API.md", "broker/broker.sh", "rabbitmq.conf", "dist/src/index.d.ts", "dist/actors/index.d.ts"]) expect(fs.existsSync(path.join(installed, f))).toBe(true);
  expect(fs.existsSync(path.join(installed, "src"))).toBe(false);
  expect(JSON.parse(fs.readFileSync(path.join(installed, "dist", "src", "errors.js.map"), "utf8")).sourcesContent?.[0]).toContain("class WarrenError");
});

test("an ES module with top-level await and no main guard: tasks, an actor and its own error class", async () => {
  fs.writeFileSync(path.join(project, "bank.mts"), [
    'import * as warren from "warren";',
    "export class Overdrawn extends Error { constructor(readonly balance: number) { super(`balance ${balance}`); } }",
    "export const withdraw = warren.remote((balance: number, amount: number): number => { if (amount > balance) throw new Overdrawn(balance); return balance - amount; });",
  ].join("\n"));
  fs.writeFileSync(path.join(project, "app.mts"), [
    'import * as warren from "warren";',
    'import { Overdrawn, withdraw } from "./bank.mjs";',
    "export const add = warren.remote((a: number, b: number) => a + b);",
    "export const Tally = warren.actor({ numCpus: 0 })(class Tally extends warren.Actor { total = 0; add(n: number) { return (this.total += n); } });",
    "await warren.init({ numCpus: 1 });",
    "console.log(await warren.get(add.remote(1, 2)));",
    "const tally = Tally.remote();",
    "await warren.get(tally.add.remote(2));",
    "console.log(await warren.get(tally.add.remote(3)));",
    "const err = await warren.get(withdraw.remote(5, 9)).then(() => undefined, (e) => e);",
    "console.log(err.cause instanceof Overdrawn, err.cause.balance);",
    "await warren.shutdown();",
  ].join("\n"));
  const r = await run([path.join(installed, "dist", "src", "cli", "main.js"), "run", "app.mts"]);
  expect(r.stderr).toMatch(/^Started a local warren cluster\. View the dashboard at http:\/\/127\.0\.0\.1:\d+\n$/); // and nothing else
  expect(r.stdout.trim().split("\n")).toEqual(["3", "5", "true 5"]);
});

test("npx warren broker status works from the consumer (its script ships in the package)", async () => {
  const r = await run([path.join(installed, "dist", "src", "cli", "main.js"), "broker", "status"]);
  expect(r.stdout).toMatch(/RabbitMQ answers at /);
  expect(r.code).toBe(0);
});

test("a CommonJS program in plain JavaScript, no guard", async () => {
  fs.writeFileSync(path.join(project, "app.js"), [
    'const warren = require("warren");',
    "const square = warren.remote((n) => n * n);",
    "exports.square = square;",
    "(async () => { await warren.init({ numCpus: 1 }); console.log(await warren.get([1, 2, 3].map((n) => square.remote(n)))); await warren.shutdown(); })();",
  ].join("\n"));
  const r = await run(["app.js"]);
  expect(r.stderr).toMatch(/^Started a local warren cluster\. View the dashboard at http:\/\/127\.0\.0\.1:\d+\n$/); // and nothing else
  expect(r.stdout.trim()).toBe("[ 1, 4, 9 ]");
});

test.each([
  ["node10", "commonjs"],
  ["node16", "node16"],
  ["bundler", "esnext"],
])("a consumer type-checks strict, with exactOptionalPropertyTypes, under %s resolution", async (resolution, module) => {
  fs.writeFileSync(path.join(project, "types.ts"), [
    'import * as warren from "warren";',
    'import { Queue } from "warren/actors";',
    'import { waitForCondition } from "warren/testing";',
    'import { NVIDIA_TESLA_V100 } from "warren/accelerators";',
    "export const pair = warren.remote((s: string): [string, number] => [s, s.length]);",
    'export const refs: [warren.ObjectRef<string>, warren.ObjectRef<number>] = pair.options({ numReturns: 2 }).remote("x");',
    "export const used = [Queue, waitForCondition, NVIDIA_TESLA_V100];",
  ].join("\n"));
  const tsc = path.join(ROOT, "node_modules", "typescript", "bin", "tsc");
  const r = await run([tsc, "--noEmit", "--strict", "--exactOptionalPropertyTypes", "--moduleResolution", resolution, "--module", module,
    "--target", "es2022", "--ignoreDeprecations", "6.0", "--types", "node", "types.ts"]);
  expect(r.stdout + r.stderr).toBe("");
  expect(r.code).toBe(0);
}, 60_000);

test("npm run docs: the API reference builds from the doc comments without a warning", () => {
  const out = path.join(project, "reference");
  execFileSync(process.execPath, [path.join(ROOT, "node_modules", "typedoc", "bin", "typedoc"), "--out", out], { cwd: ROOT, stdio: "pipe" });
  const functions = fs.readdirSync(path.join(out, "functions")).join(" ");
  for (const f of ["remote", "get", "wait", "put", "init"]) expect(functions).toMatch(new RegExp(`\\b${f}\\.html`));
}, 60_000);
