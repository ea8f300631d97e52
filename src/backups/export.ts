/**
 * Writes a backup tarball in LXD 5.0.2's layout, from trees (any pool) or from a driver's own
 * streams (optimized, e.g. btrfs send):
 *
 *   backup/index.yaml                  name, backend, pool, snapshots, optimized, config
 *   backup/snapshots/<s>/…             each snapshot's volume tree, oldest first
 *   backup/container/…                 the instance volume's tree, with backup.yaml
 * or, optimized:
 *   backup/index.yaml
 *   backup/optimized_header.yaml       the subvolumes the streams hold (optimized.ts)
 *   backup/snapshots/<s>.bin           each snapshot's stream, oldest first
 *   backup/container.bin               the volume's stream
 */
import { createWriteStream } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { once } from "node:events";
import { createTarball } from "../images/archive.js";
import type { Compression } from "../images/format.js";
import { byteSize } from "../images/progress.js";
import { indexYaml, type BackupIndex } from "./config.js";
import { optimizedHeaderYaml } from "./optimized.js";

export interface TarballSource {
  index: BackupIndex;
  /** Trees: the instance volume (with backup.yaml in it) and its snapshots' trees, oldest first. */
  trees?: { volume: string; snapshots: { name: string; path: string }[] };
  /** Streams: the directory the driver wrote them into, and their names (below backup/), in order. */
  streams?: { dir: string; files: string[] };
}

/**
 * Writes the tarball to <scratch>/backup (scratch is a private, empty directory of the
 * caller's) and returns its path. Progress is reported as bytes written.
 */
export async function writeBackupTarball(
  scratch: string,
  src: TarballSource,
  opts: { compression: Compression; signal?: AbortSignal; onProgress?: (text: string) => void },
): Promise<string> {
  await mkdir(join(scratch, ".index"), { mode: 0o700 });
  await writeFile(join(scratch, ".index", "index.yaml"), indexYaml(src.index), { mode: 0o644 });
  const head = [".index/index.yaml"];
  if (src.index.optimized_header) {
    await writeFile(join(scratch, ".index", "optimized_header.yaml"), optimizedHeaderYaml(src.index.snapshots), { mode: 0o644 });
    head.push(".index/optimized_header.yaml");
  }
  // The index's scratch name (".index/…") is not a host path; its expression comes last.
  const members = ["--transform", "s,^\\.index/,backup/,S", "-C", scratch, ...head];
  if (src.streams) {
    members.unshift("--transform", `s,^${escapeRegex(src.streams.dir.replace(/^\/+/, ""))}/,backup/,S`);
    members.push("-C", "/", ...src.streams.files.map((f) => join(src.streams!.dir, f).replace(/^\/+/, "")));
  }
  if (src.trees) {
    // Trees are named by their whole host path (tar -C /), so no two can share a prefix
    // whatever the instance and snapshot names; each is renamed to its place in LXD's layout.
    const trees = [
      ...src.trees.snapshots.map((x) => ({ path: x.path, as: `backup/snapshots/${x.name}` })),
      { path: src.trees.volume, as: "backup/container" },
    ];
    members.unshift(
      ...trees.flatMap((t) => ["--transform", `s,^${escapeRegex(t.path.replace(/^\/+/, ""))}\\(/\\|$\\),${t.as.replace(/[\\,&]/g, "\\$&")}\\1,S`]),
    );
    members.push("-C", "/", ...trees.map((t) => t.path.replace(/^\/+/, "")));
  }

  const tarball = join(scratch, "backup");
  const tar = createTarball(members, opts.compression, opts.signal, { live: !!src.trees });
  const out = createWriteStream(tarball, { mode: 0o600 });
  let bytes = 0;
  const started = Date.now();
  let last = 0;
  tar.stdout.on("data", (c: Buffer) => {
    bytes += c.length;
    const now = Date.now();
    if (opts.onProgress && now - last > 250) {
      last = now;
      opts.onProgress(`${byteSize(bytes)} (${byteSize(Math.round(bytes / Math.max((now - started) / 1000, 0.001)))}/s)`);
    }
  });
  tar.stdout.pipe(out);
  await Promise.all([tar.done, once(out, "finish")]);
  return tarball;
}

function escapeRegex(s: string): string {
  return s.replace(/[.[\]*^$\\,]/g, (c) => `\\${c}`);
}
