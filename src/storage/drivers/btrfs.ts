import { chmod, lstat, mkdir, readdir, rename, rm, rmdir, statfs } from "node:fs/promises";
import { dirname, join } from "node:path";
import { run } from "../../sys/exec.js";
import { resolveProgram } from "../../sys/spawn.js";
import type { DriverCapabilities, PoolResources, PoolSpec, StorageDriver, VolumeRef } from "../driver.js";
import { closeVolumeDirs, SNAPSHOT_DIRS, TYPE_DIRS } from "./dir.js";
import { classifySource, hasForeignEntries, isMountPoint, mountSource, prepareSource, unmountSource, type PoolSource } from "./btrfs/pool.js";
import { enableQuotas, limit, qgroupOf, ReferencedBytes } from "./btrfs/qgroups.js";
import { optimizedBackupFiles, receiveVolume, removeReceived, sendVolume } from "./btrfs/send.js";
import { createSubvolume, deleteTree, isSubvolumeRoot, setReadonly, snapshotTree } from "./btrfs/subvolumes.js";
import { copyTreeInto } from "./btrfs/tree-copy.js";
import { recoverInterrupted, scratchPath } from "./btrfs/recovery.js";

export { optimizedBackupFiles };

const LAYOUT = [...Object.values(TYPE_DIRS), ...Object.values(SNAPSHOT_DIRS)];
const DEFAULT_MOUNT_OPTIONS = "user_subvol_rm_allowed";
const CAPABILITIES: DriverCapabilities = {
  instantSnapshots: true,
  cheapCopy: true,
  quotas: true,
  blockVolumes: false,
  imageVolumes: true,
  optimizedBackups: true,
};

/** Whether this host has btrfs-progs (looked up on PATH, no process spawned). */
export function btrfsToolsPresent(): boolean {
  const PATH = process.env.PATH || undefined;
  return resolveProgram("btrfs", PATH) !== undefined && resolveProgram("mkfs.btrfs", PATH) !== undefined;
}

/**
 * The "btrfs" driver: each volume is a subvolume in LXD's layout (containers/<name>,
 * containers-snapshots/<name>/<snap>, images/<fingerprint>, custom/…, virtual-machines/…) of
 * a btrfs filesystem mounted at <LODGE_DIR>/storage-pools/<pool> (btrfs/pool.ts says where
 * it comes from). Snapshots are read-only subvolume snapshots, copies writable ones, both
 * O(1); an image is filled once into a read-only image volume and instances are snapshots of
 * it. Quotas are qgroup limits on referenced bytes.
 *
 * Every new volume, snapshot or copy is made under a scratch name and renamed into place, so
 * a failure or a crash never leaves a half one under the real name. Access is as the dir
 * driver's: the pool's root and type directories 0711, each volume 0700 (the instance driver
 * opens an instance's volume to its root alone), snapshot directories 0700.
 *
 * Loop files go in `disksDir`, by default <defaultRoot>/../disks (<LODGE_DIR>/disks).
 */
export class BtrfsDriver implements StorageDriver {
  readonly name = "btrfs";
  async capabilities(): Promise<DriverCapabilities> {
    return CAPABILITIES;
  }
  readonly poolKeys = {
    source: { type: "string" as const, description: "Block device, btrfs directory or subvolume, or empty for a loop file under LODGE_DIR/disks" },
    size: { type: "size" as const, description: "Size of the loop file (default: 20% of free disk space, at least 5GiB, at most 30GiB)" },
    "btrfs.mount_options": { type: "string" as const, default: DEFAULT_MOUNT_OPTIONS, description: "Mount options of the pool's filesystem" },
  };
  private versionText?: Promise<string>;

  constructor(
    private readonly defaultRoot: string,
    private readonly disksDir = join(dirname(defaultRoot), "disks"),
  ) {}

  /** btrfs-progs' version ("6.2"). */
  version(): Promise<string> {
    return (this.versionText ??= run("btrfs", ["--version"]).then(
      (r) => /v([\d.]+)/.exec(r.stdout)?.[1] ?? r.stdout.trim(),
      (e) => {
        this.versionText = undefined; // asked again next time
        throw e;
      },
    ));
  }

  /** Where a pool is reachable: <LODGE_DIR>/storage-pools/<name>, whatever its source. */
  poolPath(pool: PoolSpec): string {
    return join(this.defaultRoot, pool.name);
  }

  /** The loop file the driver makes for a pool with an empty source. */
  loopFile(pool: PoolSpec): string {
    return join(this.disksDir, `${pool.name}.img`);
  }

  private source(pool: PoolSpec): Promise<PoolSource> {
    return classifySource(pool.config.source, this.loopFile(pool));
  }

  async createPool(pool: PoolSpec): Promise<Record<string, string>> {
    const src = await this.source(pool);
    if (src.kind === "directory" && (await hasForeignEntries(src.path, LAYOUT))) throw new Error(`source "${src.path}" is not empty`);
    const made = src.kind === "loop" && src.ours && !(await lstat(src.file).catch(() => undefined));
    const settled = { ...pool.config, ...(await prepareSource(src, pool.config)) };
    try {
      await this.mountPool({ ...pool, config: settled });
    } catch (e) {
      if (made && src.kind === "loop") await rm(src.file, { force: true });
      throw e;
    }
    return settled;
  }

  /** Mounts the pool, and puts back what a crash left of work in it (btrfs/recovery.ts). */
  async mountPool(pool: PoolSpec): Promise<void> {
    const root = this.poolPath(pool);
    await mountSource(await this.source(pool), root, pool.config["btrfs.mount_options"] ?? DEFAULT_MOUNT_OPTIONS);
    await chmod(root, 0o711);
    for (const d of LAYOUT) {
      await mkdir(join(root, d), { recursive: true, mode: 0o711 });
      await chmod(join(root, d), 0o711);
    }
    const snapshotDirs = await Promise.all(
      Object.values(SNAPSHOT_DIRS).map(async (d) => (await readdir(join(root, d))).map((v) => join(root, d, v))),
    );
    const dirs = [...Object.values(TYPE_DIRS).map((d) => join(root, d)), ...snapshotDirs.flat()];
    await recoverInterrupted(dirs, (p) => (p.endsWith(".receiving") ? removeReceived(p) : removeVolumeDir(p)));
  }

  async unmountPool(pool: PoolSpec): Promise<void> {
    await unmountSource(await this.source(pool), this.poolPath(pool));
  }

  async restrictAccess(pool: PoolSpec): Promise<number> {
    return closeVolumeDirs(this.poolPath(pool));
  }

  /** Unmounts, and removes the driver's own loop file; a user's device or directory keeps its data. */
  async deletePool(pool: PoolSpec): Promise<void> {
    const root = this.poolPath(pool);
    const src = await this.source(pool);
    if (await isMountPoint(root)) for (const d of LAYOUT) await rmdir(join(root, d)).catch(() => {});
    await unmountSource(src, root);
    if (src.kind === "loop" && src.ours) await rm(src.file, { force: true });
    await rmdir(root).catch(() => {});
  }

  async poolResources(pool: PoolSpec): Promise<PoolResources> {
    const root = this.poolPath(pool);
    if (!(await isMountPoint(root))) throw new Error(`storage pool "${pool.name}" is not mounted`);
    const s = await statfs(root);
    return {
      space: { total: s.blocks * s.bsize, used: (s.blocks - s.bfree) * s.bsize },
      inodes: { total: s.files, used: s.files - s.ffree },
    };
  }

  mountPath(vol: VolumeRef): string {
    return join(this.poolPath(vol.pool), TYPE_DIRS[vol.type], vol.name);
  }

  snapshotPath(vol: VolumeRef, snapshot: string): string {
    return join(this.snapshotsDir(vol), snapshot);
  }

  private snapshotsDir(vol: VolumeRef): string {
    return join(this.poolPath(vol.pool), SNAPSHOT_DIRS[vol.type], vol.name);
  }

  /** A new subvolume, filled by a reflink copy of `from.tree`; an image volume is read-only once filled. */
  async createVolume(vol: VolumeRef, from?: { tree: string }, signal?: AbortSignal): Promise<void> {
    await this.place(this.mountPath(vol), async (scratch) => {
      await createSubvolume(scratch);
      if (from) await copyTreeInto(from.tree, scratch, signal);
      await chmod(scratch, 0o700);
      if (vol.type === "image") await setReadonly(scratch, true);
    });
  }

  async copyVolume(from: VolumeRef, to: VolumeRef, signal?: AbortSignal): Promise<void> {
    await this.place(this.mountPath(to), async (scratch) => {
      // An image volume was filled by a copy and is read-only since: nothing can be nested in it.
      await snapshotTree(this.mountPath(from), scratch, { readonly: false, signal, flat: from.type === "image" });
      await chmod(scratch, 0o700);
    });
  }

  async deleteVolume(vol: VolumeRef): Promise<void> {
    const target = this.mountPath(vol);
    // Also what a crash left of a create, copy or restore.
    for (const p of [scratchPath(target, "creating"), scratchPath(target, "restoring"), target, scratchPath(target, "old")]) await removeVolumeDir(p);
    await removeReceived(scratchPath(target, "receiving"));
    const snaps = this.snapshotsDir(vol);
    for (const s of await readdir(snaps).catch(() => [])) await removeVolumeDir(join(snaps, s));
    await rmdir(snaps).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "ENOENT") throw e;
    });
  }

  async renameVolume(vol: VolumeRef, newName: string): Promise<void> {
    const to = { ...vol, name: newName };
    await rename(this.mountPath(vol), this.mountPath(to));
    if (await lstat(this.snapshotsDir(vol)).catch(() => undefined)) await rename(this.snapshotsDir(vol), this.snapshotsDir(to));
  }

  async mount(): Promise<void> {}
  async unmount(): Promise<void> {}

  /**
   * Referenced bytes of the volume's qgroup; undefined while quotas are off on the pool. A
   * pool that is a whole filesystem (loop file, device) answers for all its volumes at once.
   */
  async usage(vol: VolumeRef): Promise<number | undefined> {
    const wholeFs = (await this.source(vol.pool)).kind !== "directory";
    return this.referenced.of(this.poolPath(vol.pool), this.mountPath(vol), wholeFs);
  }
  private readonly referenced = new ReferencedBytes();

  async setQuota(vol: VolumeRef, bytes: number | undefined): Promise<void> {
    const path = this.mountPath(vol);
    if (bytes === undefined) {
      if (await qgroupOf(path)) await limit(path, undefined);
      return;
    }
    await enableQuotas(this.poolPath(vol.pool));
    this.referenced.forget(this.poolPath(vol.pool)); // it may say "quotas off"
    await limit(path, bytes);
  }

  async createSnapshot(vol: VolumeRef, snapshot: string, signal?: AbortSignal): Promise<void> {
    await mkdir(this.snapshotsDir(vol), { recursive: true, mode: 0o700 });
    await this.place(this.snapshotPath(vol, snapshot), (scratch) => snapshotTree(this.mountPath(vol), scratch, { readonly: true, signal }));
  }

  async deleteSnapshot(vol: VolumeRef, snapshot: string): Promise<void> {
    const path = this.snapshotPath(vol, snapshot);
    await removeVolumeDir(scratchPath(path, "creating"));
    await removeVolumeDir(path);
    await rmdir(this.snapshotsDir(vol)).catch(() => {});
  }

  async renameSnapshot(vol: VolumeRef, snapshot: string, newName: string): Promise<void> {
    await rename(this.snapshotPath(vol, snapshot), this.snapshotPath(vol, newName));
  }

  /**
   * A writable snapshot of the snapshot is made beside the volume and swapped in; the old
   * subvolume goes once the new one is in place. The volume's quota carries over.
   */
  async restoreSnapshot(vol: VolumeRef, snapshot: string, signal?: AbortSignal): Promise<void> {
    const target = this.mountPath(vol);
    const fresh = scratchPath(target, "restoring");
    await removeVolumeDir(fresh);
    try {
      await snapshotTree(this.snapshotPath(vol, snapshot), fresh, { readonly: false, signal });
      const quota = (await qgroupOf(target))?.limit;
      if (quota !== undefined) await limit(fresh, quota);
      signal?.throwIfAborted();
    } catch (e) {
      await removeVolumeDir(fresh);
      throw e;
    }
    const old = scratchPath(target, "old");
    // Done again after a crash between the two renames (the instances service finishes an
    // interrupted restore at start), the volume is then only at its old name.
    if (await lstat(target).catch(() => undefined)) {
      await removeVolumeDir(old);
      await rename(target, old);
    }
    await rename(fresh, target);
    await removeVolumeDir(old);
  }

  async copyFromSnapshot(from: VolumeRef, snapshot: string, to: VolumeRef, signal?: AbortSignal): Promise<void> {
    await this.place(this.mountPath(to), async (scratch) => {
      await snapshotTree(this.snapshotPath(from, snapshot), scratch, { readonly: false, signal });
      await chmod(scratch, 0o700);
    });
  }

  /**
   * Optimized backup (StorageDriver.exportOptimized): btrfs
   * send streams of the volume's snapshots (oldest first, each incremental on the one before)
   * and of the volume (incremental on the last snapshot), written into `dir` with the names
   * optimizedBackupFiles gives. Returns those files, relative to `dir`.
   */
  async exportOptimized(vol: VolumeRef, snapshots: string[], dir: string, signal?: AbortSignal): Promise<string[]> {
    const files = optimizedBackupFiles(vol.type);
    await mkdir(join(dir, dirname(files.snapshot("x"))), { recursive: true, mode: 0o700 });
    await sendVolume({
      volume: this.mountPath(vol),
      snapshots: snapshots.map((name) => ({ name, path: this.snapshotPath(vol, name) })),
      volumeFile: join(dir, files.volume),
      snapshotFile: (name) => join(dir, files.snapshot(name)),
      signal,
    });
    return [...snapshots.map((n) => files.snapshot(n)), files.volume];
  }

  /**
   * Makes `vol` (which must not exist) and its snapshots from what exportOptimized wrote into
   * `dir`; nothing is left of a failed import.
   */
  async importOptimized(vol: VolumeRef, snapshots: string[], dir: string, signal?: AbortSignal): Promise<void> {
    const target = this.mountPath(vol);
    if (await lstat(target).catch(() => undefined)) throw new Error(`${target} already exists`);
    if (snapshots.length) await mkdir(this.snapshotsDir(vol), { recursive: true, mode: 0o700 });
    const files = optimizedBackupFiles(vol.type);
    try {
      await receiveVolume({
        scratch: scratchPath(target, "receiving"),
        snapshots: snapshots.map((name) => ({ file: join(dir, files.snapshot(name)), path: this.snapshotPath(vol, name) })),
        volumeFile: join(dir, files.volume),
        volume: target,
        signal,
      });
      await chmod(target, 0o700);
    } catch (e) {
      await this.deleteVolume(vol).catch(() => {});
      throw e;
    }
  }

  /** Makes `target` through `make(scratch)` and a rename; nothing is left of a failure. */
  private async place(target: string, make: (scratch: string) => Promise<void>): Promise<void> {
    if (await lstat(target).catch(() => undefined)) throw new Error(`${target} already exists`);
    const scratch = scratchPath(target, "creating");
    await removeVolumeDir(scratch);
    try {
      await make(scratch);
      await rename(scratch, target);
    } catch (e) {
      await removeVolumeDir(scratch);
      throw e;
    }
  }
}

/** Removes a volume or snapshot: a subvolume (with nested ones) by btrfs, anything else by rm. */
async function removeVolumeDir(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (!st) return;
  if (st.isDirectory() && isSubvolumeRoot(st.ino)) await deleteTree(path);
  else await rm(path, { recursive: true, force: true });
}
