#!/usr/bin/env node
// Runs every example program in turn (`npm run examples`), or the ones named
// (`npm run examples -- nested_tasks`). Each example asserts what the seed page shows and exits
// non-zero if it does not; this runner exits non-zero if any example failed.
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const dir = __dirname;
const all = fs.readdirSync(dir).filter((f) => f.endsWith(".ts")).map((f) => f.slice(0, -3)).sort();
const args = process.argv.slice(2);
if (args.includes("--help") || args.includes("-h")) {
  console.log(`usage: npm run examples [-- NAME...]\n\nRuns the example programs (all by default). Available:\n  ${all.join("\n  ")}`);
  process.exit(0);
}
const unknown = args.filter((a) => !all.includes(a.replace(/\.ts$/, "")));
if (unknown.length) {
  console.error(`unknown example(s): ${unknown.join(", ")}\navailable: ${all.join(", ")}`);
  process.exit(2);
}
const chosen = args.length ? args.map((a) => a.replace(/\.ts$/, "")) : all;
const failed = [];
chosen.forEach((name, i) => {
  console.log(`\n=== [${i + 1}/${chosen.length}] ${name} ===`);
  const started = Date.now();
  const r = spawnSync(process.execPath, ["-r", "tsx/cjs", path.join(dir, `${name}.ts`)], { stdio: "inherit" });
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (r.status === 0) console.log(`--- ${name}: ok (${secs}s)`);
  else {
    console.log(`--- ${name}: FAILED (${r.signal ?? `exit ${r.status}`}, ${secs}s)`);
    failed.push(name);
  }
});
console.log(`\n${chosen.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
