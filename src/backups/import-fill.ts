/**
 * Puts a checked backup's data into the new instance's volume, inside the instance create's
 * undo: from trees, each snapshot is unpacked into the volume in turn (oldest first) and
 * snapshotted by the pool's driver, then the volume gets the instance's own tree, as LXD's
 * generic unpacker does; from a driver's streams (optimized), the driver makes the volume and
 * its snapshots at once. Each snapshot then gets its record, as backup.yaml describes it.
 */
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Revert } from "../core/revert.js";
import { deviceMembers, extractTarball } from "../images/archive.js";
import type { TarMember } from "../images/tar-reader.js";
import type { SnapshotService } from "../instances/snapshots/service.js";
import type { VolumeRef } from "../storage/driver.js";
import type { BackupPlan } from "./import-check.js";

export interface FillDeps {
  snapshots: Pick<SnapshotService, "addImported">;
}

export interface FillContext {
  /** The uploaded tarball. */
  file: string;
  members: readonly TarMember[];
  plan: BackupPlan;
  instance: { project: string; name: string };
  signal?: AbortSignal;
  onProgress?: (text: string) => void;
}

type Volume = { path: string; ref: VolumeRef };

/** Unpacks the trees (plan.trees) into the volume, taking a snapshot after each snapshot's tree. */
export async function fillFromTrees(d: FillDeps, c: FillContext, volume: Volume, undo: Revert): Promise<void> {
  const trees = c.plan.trees!;
  const exclude = deviceMembers(c.members);
  const unpack = async (only: string) => {
    await emptyDir(volume.path);
    await extractTarball(c.file, volume.path, { exclude, only, stripComponents: only.split("/").length, signal: c.signal });
    // LXD's own description of the instance; Lodge's records are the truth here.
    await rm(join(volume.path, "backup.yaml"), { force: true });
  };
  for (const [i, s] of c.plan.snapshots.entries()) {
    c.onProgress?.(`Unpacking snapshot "${s.name}" (${i + 1} of ${c.plan.snapshots.length})`);
    await unpack(trees.snapshots.get(s.name)!);
    c.signal?.throwIfAborted();
    await d.snapshots.addImported(volume.ref, c.instance, s, undo, { signal: c.signal });
  }
  c.onProgress?.("Unpacking the backup");
  await unpack(trees.container);
}

/** Extracts the streams (plan.streams) into `dir`, named below it as below backup/. */
export async function extractStreams(c: FillContext, dir: string): Promise<void> {
  c.onProgress?.("Unpacking the storage driver's streams");
  await mkdir(dir, { mode: 0o700 });
  await extractTarball(c.file, dir, { exclude: [], only: c.plan.streams!, stripComponents: 1, signal: c.signal });
}

/** After the driver made the volume and its snapshots from the streams: their records. */
export async function recordStreamSnapshots(d: FillDeps, c: FillContext, volume: Volume, undo: Revert): Promise<void> {
  for (const s of c.plan.snapshots) await d.snapshots.addImported(volume.ref, c.instance, s, undo, { taken: true });
  await rm(join(volume.path, "backup.yaml"), { force: true });
}

/** Removes everything inside `dir` (a volume about to get the next tree). */
async function emptyDir(dir: string): Promise<void> {
  for (const e of await readdir(dir)) await rm(join(dir, e), { recursive: true, force: true });
}
