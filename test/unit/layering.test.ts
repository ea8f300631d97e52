import test from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";

// Imports run one way: routes (src/daemon) → domains → drivers → sys/state/core/api. A domain
// that reached up into src/daemon would tie it to the HTTP server and invite import cycles.

const SRC = resolve(import.meta.dirname, "../../src");

async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await tsFiles(p)));
    else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Relative imports of a file, resolved to paths under src. */
async function importsOf(file: string): Promise<string[]> {
  const text = await readFile(file, "utf8");
  return [...text.matchAll(/(?:from|import)\s*\(?\s*["'](\.[^"']+)["']/g)].map((m) => relative(SRC, resolve(dirname(file), m[1]!)));
}

test("nothing outside src/daemon imports from it", async () => {
  const offending: string[] = [];
  for (const file of await tsFiles(SRC)) {
    const rel = relative(SRC, file);
    if (rel.startsWith("daemon/")) continue;
    for (const imp of await importsOf(file)) if (imp.startsWith("daemon/")) offending.push(`${rel} → ${imp}`);
  }
  assert.deepEqual(offending, []);
});

test("the lower layers (core, sys, state, api) import no domain", async () => {
  const lower = ["core/", "sys/", "state/", "api/"];
  const domains = ["daemon/", "instances/", "profiles/", "images/", "storage/", "networks/", "warnings/", "config/", "cli/", "client/"];
  const offending: string[] = [];
  for (const file of await tsFiles(SRC)) {
    const rel = relative(SRC, file);
    if (!lower.some((l) => rel.startsWith(l))) continue;
    for (const imp of await importsOf(file)) if (domains.some((d) => imp.startsWith(d))) offending.push(`${rel} → ${imp}`);
  }
  assert.deepEqual(offending, []);
});
