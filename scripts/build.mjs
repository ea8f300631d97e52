// Builds the two executables. The CLI is bundled into one file with every dependency so it
// starts fast; the daemon keeps node_modules external (native better-sqlite3, fastify).
import { build } from "esbuild";
import { chmod, mkdir, rm } from "node:fs/promises";

await rm("dist", { recursive: true, force: true });
await mkdir("dist", { recursive: true });

const common = {
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  sourcemap: "linked",
  legalComments: "none",
  logLevel: "warning",
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __lodgeCreateRequire } from 'node:module'; const require = __lodgeCreateRequire(import.meta.url);",
  },
};

await Promise.all([
  // Split: each verb is a chunk in dist/cli/, imported only when that verb runs.
  build({
    ...common,
    entryPoints: { lodge: "src/cli/main.ts" },
    outdir: "dist",
    chunkNames: "cli/[name]-[hash]",
    splitting: true,
    minify: true,
  }),
  build({ ...common, entryPoints: ["src/daemon/main.ts"], outfile: "dist/lodged.js", packages: "external" }),
]);
await Promise.all([chmod("dist/lodge.js", 0o755), chmod("dist/lodged.js", 0o755)]);

// Native parts, one directory each under native/, described by its build.json:
// { "out": "<file in dist/>", "sources": [...], "flags": [...] } (flags before the sources).
// E.g. the file-access helper (native/fileio): the file API runs it to act inside an instance's
// namespaces, which Node cannot enter. No shell: the compiler's arguments are a list.
{
  const { spawnSync } = await import("node:child_process");
  const { readdir, readFile } = await import("node:fs/promises");
  const cc = process.env.CC || "cc";
  for (const dir of (await readdir("native", { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
    const spec = JSON.parse(await readFile(`native/${dir}/build.json`, "utf8"));
    const args = ["-O2", "-Wall", "-Wextra", ...(spec.flags ?? []), "-o", `dist/${spec.out}`, ...spec.sources.map((f) => `native/${dir}/${f}`), ...(spec.libs ?? [])];
    const r = spawnSync(cc, args, { stdio: "inherit" });
    if (r.error || r.status !== 0) {
      console.error(`build: compiling native/${dir} with ${cc} failed${r.error ? `: ${r.error.message}` : ""}`);
      process.exit(1);
    }
  }
}
