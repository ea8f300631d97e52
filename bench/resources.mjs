#!/usr/bin/env node
// GET /1.0/resources's work in process: the whole answer (hostResources) and each section,
// read from this host's /proc and /sys. Prints the first call (cold: ids files parsed, code
// not yet optimised), then the median and p90 of N warm calls of each, in ms.
// Not a test: numbers depend on the machine's load.
//
//   node --import tsx bench/resources.mjs [N]        (N defaults to 50)
import * as resources from "../src/sys/resources/index.ts";
import { fmtMs, summary } from "./lib/stats.mjs";

const runs = Number(process.argv[2] ?? 50);
if (!Number.isInteger(runs) || runs < 1) {
  console.error("usage: node --import tsx bench/resources.mjs [runs]");
  process.exit(2);
}

let t = performance.now();
resources.hostResources();
console.log(`first call (cold)  ${fmtMs(performance.now() - t)}`);
for (let i = 0; i < 10; i++) resources.hostResources();

const parts = Object.entries(resources).filter(([, f]) => typeof f === "function");
for (const [name, fn] of parts.sort(([a], [b]) => (a === "hostResources" ? -1 : b === "hostResources" ? 1 : a.localeCompare(b)))) {
  const samples = [];
  for (let i = 0; i < runs; i++) {
    t = performance.now();
    fn();
    samples.push(performance.now() - t);
  }
  const s = summary(samples);
  console.log(`${name.padEnd(18)} median ${fmtMs(s.median).padStart(9)}  p90 ${fmtMs(s.p90).padStart(9)}`);
}
