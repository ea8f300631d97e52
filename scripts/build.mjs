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
