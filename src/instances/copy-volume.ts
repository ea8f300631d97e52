import { run } from "../sys/exec.js";
import type { StorageService } from "../storage/service.js";
import type { VolumeRef } from "../storage/driver.js";

/**
 * The data side of an instance copy with its snapshots. The driver contract copies a volume or
 * one snapshot of it into a new volume, and snapshots a volume in place; it has no "put this
 * tree in as that volume's snapshot". So the snapshots are carried as LXD's generic copy does:
 * the new volume is made from the oldest snapshot (the driver's own copy), and each later state
 * is synced into the new volume's tree (rsync, only what changed) and snapshotted there, ending
 * with the source's current state. Every snapshot is then the pool's own, independent of the
 * source's.
 */
export async function copyWithSnapshots(opts: {
  storage: StorageService;
  from: VolumeRef;
  /** The source volume's live tree. */
  fromPath: string;
  /** Source snapshots to carry, oldest first. */
  snapshots: readonly string[];
  /** Makes the new volume (the storage service's copyInstanceVolume, record and all). */
  create: (fromSnapshot?: string) => Promise<{ ref: VolumeRef; path: string }>;
  /** Runs a sync of the source's live tree (the instance may be frozen for it). */
  live: <T>(work: () => Promise<T>) => Promise<T>;
  /** Called after each snapshot is made in the new volume. */
  snapshotted: (name: string) => Promise<void>;
  signal?: AbortSignal;
}): Promise<{ ref: VolumeRef; path: string }> {
  const { storage, from, snapshots, signal } = opts;
  if (snapshots.length === 0) return opts.live(() => opts.create());
  const to = await opts.create(snapshots[0]);
  await addSnapshots({ storage, from, to: to.ref, toPath: to.path, snapshots, snapshotted: opts.snapshotted, signal, fresh: true });
  await opts.live(() => syncTree(opts.fromPath, to.path, signal));
  return to;
}

/**
 * Adds the named source snapshots to `to` in order, syncing each into its tree first (the
 * first one not, when `fresh`: the volume was made from it). `to`'s tree ends as the last
 * snapshot's; the caller syncs it on.
 */
export async function addSnapshots(opts: {
  storage: StorageService;
  from: VolumeRef;
  to: VolumeRef;
  toPath: string;
  snapshots: readonly string[];
  snapshotted: (name: string) => Promise<void>;
  signal?: AbortSignal;
  fresh?: boolean;
}): Promise<void> {
  const { storage, from, to, signal } = opts;
  for (const [i, s] of opts.snapshots.entries()) {
    if (i > 0 || !opts.fresh) await syncTree(storage.snapshotPath(from, s), opts.toPath, signal);
    await storage.snapshotInstanceVolume(to, s, signal);
    await opts.snapshotted(s);
  }
}

/** Makes `dest` hold exactly what `src` holds: owners, modes, links, xattrs, ACLs, sparse files. */
export async function syncTree(src: string, dest: string, signal?: AbortSignal): Promise<void> {
  await run("rsync", ["-aHAXS", "--numeric-ids", "--delete", "--", `${src}/`, `${dest}/`], { signal, dieWithDaemon: true });
}
