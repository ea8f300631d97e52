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
    entryPoints: { lodge: "src/cli/main.ts", "lodge-worker": "src/cli/worker.ts" },
    outdir: "dist",
    chunkNames: "cli/[name]-[hash]",
    splitting: true,
    minify: true,
  }),
  build({ ...common, entryPoints: ["src/daemon/main.ts"], outfile: "dist/lodged.js", packages: "external" }),
]);
await Promise.all([chmod("dist/lodge.js", 0o755), chmod("dist/lodged.js", 0o755)]);

// The CLI launcher (native/launcher) finds its warm spares by this build's id, so a rebuilt CLI
// never talks to a spare of the previous one.
const buildId = await (async () => {
  const { createHash } = await import("node:crypto");
  const { readdir, readFile } = await import("node:fs/promises");
  const h = createHash("sha256");
  const files = ["dist/lodge.js", "dist/lodge-worker.js", ...(await readdir("dist/cli")).sort().map((f) => `dist/cli/${f}`)];
  for (const f of files) h.update(f).update(await readFile(f));
  return h.digest("hex").slice(0, 16);
})();

// Native parts, one directory each under native/, described by its build.json:
// { "out": "<file in dist/>", "sources": [...], "flags": [...] } (flags before the sources).
// E.g. the file-access helper (native/fileio): the file API runs it to act inside an instance's
// namespaces, which Node cannot enter. No shell: the compiler's arguments are a list.
{
  const { spawnSync } = await import("node:child_process");
  const { readdir, readFile } = await import("node:fs/promises");
  const cc = process.env.CC || "cc";
  for (const dir of (await readdir("native", { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
    // A directory without build.json holds shared sources only (native/common).
    const text = await readFile(`native/${dir}/build.json`, "utf8").catch(() => undefined);
    if (text === undefined) continue;
    const spec = JSON.parse(text);
    const flags = (spec.flags ?? []).map((f) => f.replaceAll("${BUILD_ID}", buildId));
    const args = ["-O2", "-Wall", "-Wextra", ...flags, "-o", `dist/${spec.out}`, ...spec.sources.map((f) => `native/${dir}/${f}`), ...(spec.libs ?? [])];
    const r = spawnSync(cc, args, { stdio: "inherit" });
    if (r.error || r.status !== 0) {
      console.error(`build: compiling native/${dir} with ${cc} failed${r.error ? `: ${r.error.message}` : ""}`);
      process.exit(1);
    }
  }
}
