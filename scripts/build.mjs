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

// The file-access helper (native/fileio/lodge-fileio.c): the file API runs it to act inside an
// instance's namespaces, which Node cannot enter. No shell: the compiler's arguments are a list.
{
  const { spawnSync } = await import("node:child_process");
  const cc = process.env.CC || "cc";
  const r = spawnSync(cc, ["-O2", "-Wall", "-Wextra", "-o", "dist/lodge-fileio", "native/fileio/lodge-fileio.c"], { stdio: "inherit" });
  if (r.error || r.status !== 0) {
    console.error(`build: compiling native/fileio/lodge-fileio.c with ${cc} failed${r.error ? `: ${r.error.message}` : ""}`);
    process.exit(1);
  }
}
