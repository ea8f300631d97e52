import { rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildImage, loadDefinition } from "../../src/images/builder/index.js";
import { ROOT } from "./daemon.js";

let built: Promise<{ file: string; fingerprint: string }> | undefined;

/**
 * The busybox image from images/busybox.yaml, built once per test file (about a second) with
 * the project's own builder, removed when the test process exits.
 */
export function busyboxImage(): Promise<{ file: string; fingerprint: string }> {
  return (built ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), "lodge-bb-"));
    // Shared by the file's tests, so it goes when the test process ends.
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    const def = await loadDefinition(join(ROOT, "images/busybox.yaml"));
    const r = await buildImage(def, { outDir: dir, format: "unified", compression: "gzip" });
    return { file: r.files[0]!, fingerprint: r.fingerprint };
  })());
}
