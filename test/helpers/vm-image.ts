import { rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildImage, loadDefinition } from "../../src/images/builder/index.js";
import { ROOT } from "./daemon.js";

let built: Promise<{ metadata: string; rootfs: string; fingerprint: string }> | undefined;

/**
 * The tiny VM image from images/tiny-vm.yaml (Debian's cloud kernel, Lodge's initramfs, a
 * busybox root disk with the agent's loader), as a split image in LXD's VM format, built once
 * per test file (seconds) and removed when the test process exits.
 */
export function tinyVmImage(): Promise<{ metadata: string; rootfs: string; fingerprint: string }> {
  return (built ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), "lodge-tinyvm-"));
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    const def = await loadDefinition(join(ROOT, "images/tiny-vm.yaml"));
    const r = await buildImage(def, { outDir: dir, format: "split", compression: "gzip" });
    const [metadata, rootfs] = r.files as [string, string];
    return { metadata, rootfs, fingerprint: r.fingerprint };
  })());
}
