#!/usr/bin/env node
// What `npm run bench` runs (after `npm run build` and `npm run broker`): loads the benchmark,
// written in TypeScript, through tsx. Usage: `npm run bench -- --help`.
require("tsx/cjs");
require("./main.ts").runAndExit();
