import { chmod, lstat, mkdir, readdir, rename, rm, rmdir, statfs } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { parseBool } from "../../config/keys.js";
import { run } from "../../sys/exec.js";
import type { IdmapEntry } from "../../sys/idmap.js";
import { createDiskLayer } from "../disk-images.js";
import type { DriverCapabilities, PoolResources, PoolSpec, StorageDriver, VolumeRef } from "../driver.js";
import { LAYERS_DIR, copyLayer, createLayer, isLayered, layerDir, layerablePath, mountLayer, removeLayer, remountLayers, unmountLayer } from "./dir-layers.js";
import { assignProject, carryProjectLimit, projectQuotasEnabled, projectUsage, releaseProject, setProjectLimit } from "./project-quota.js";

/** Sub-directory of a pool per volume type, as LXD lays out a dir pool. */
export const TYPE_DIRS: Record<VolumeRef["type"], string> = {
  container: "containers",
  "virtual-machine": "virtual-machines",
  image: "images",
  custom: "custom",
};

/** Where a type's snapshots go: containers-snapshots/<volume>/<snapshot>, as LXD. */
export const SNAPSHOT_DIRS: Record<VolumeRef["type"], string> = {
  container: "containers-snapshots",
  "virtual-machine": "virtual-machines-snapshots",
  image: "images-snapshots",
  custom: "custom-snapshots",
};

/**
 * Where work of `kind` ("creating", "restoring", "old", …) on `target` goes until it is whole:
 * `.<name>.<kind>` beside it. The leading dot keeps it apart from every real name (volume,
 * snapshot, instance and image names start with a letter or digit), so a volume a user named
 * "data.old" or "v.creating" is never taken for another's scratch and removed.
 */
export function scratchPath(target: string, kind: string): string {
  return join(dirname(target), `.${basename(target)}.${kind}`);
}

/**
 * The "dir" driver: volumes are plain directories under the pool's source directory. Copies
 * (instances from images, snapshots, copies of instances) use `cp --reflink=auto`, which
 * shares blocks on filesystems that can (XFS, btrfs) and copies elsewhere; each copy goes to a
 * scratch name first and is renamed into place, so a failure or a crash never leaves a half
 * volume under the real name.
 *
 * Access: the pool and its type directories are 0711 (an unprivileged container's root must
 * pass through them to its rootfs); each volume directory is 0700, root's alone. A volume
 * holds files that are host root's on disk (an idmapped rootfs stores container root as uid
 * 0, set-uid bits included), so no host user may reach below it; the instance driver opens
 * an instance's directory to that instance's root only (mode 0100), as LXD does. Snapshot
 * directories are 0700 too.
 *
 * Layered mode (pool key `dir.overlay`, on by default): a container made from an image is an
 * overlayfs layer over the pool's image volume (seen through its id map) rather than a copy
 * of it (dir-layers.ts), so
 * making one costs the same for a 1 MB image as for a 1 GB one. Snapshots, copies, backups and
 * publish read the mounted whole tree and make plain, independent trees; a restore makes the
 * volume a plain tree again.
 *
 * Quotas: where the pool's filesystem enforces project quotas (XFS, ext4 with prjquota), each
 * volume's writable tree (quotaDir) is a project of its own, given before anything is copied
 * in (project-quota.ts); its size is the project's limit, its usage the project's.
 */
export class DirDriver implements StorageDriver {
  readonly name = "dir";
  async capabilities(pool: PoolSpec): Promise<DriverCapabilities> {
    return {
      instantSnapshots: false,
      cheapCopy: false,
      quotas: await projectQuotasEnabled(this.poolPath(pool)),
      blockVolumes: false,
      imageVolumes: true,
      optimizedBackups: false,
    };
  }
  readonly poolKeys = {
    source: { type: "string" as const, description: "Directory the pool lives in (default: under LODGE_DIR)" },
    "dir.overlay": {
      type: "bool" as const,
      default: "true",
      description: "Containers made from an image are copy-on-write overlayfs layers over the pool's image volume (instant, whatever the filesystem)",
    },
  };


  constructor(private readonly defaultRoot: string) {}

  async version(): Promise<string> {
    return "1";
  }

  /** Where a pool lives: its "source" config, else <LODGE_DIR>/storage-pools/<name>. */
  poolPath(pool: PoolSpec): string {
    return pool.config.source || join(this.defaultRoot, pool.name);
  }

  async createPool(pool: PoolSpec): Promise<Record<string, string>> {
    const root = this.poolPath(pool);
    if (pool.config.source) {
      const st = await lstat(root).catch(() => undefined);
      if (st && !st.isDirectory()) throw new Error(`source "${root}" is not a directory`);
      if (st && (await readdir(root)).some((e) => !Object.values(TYPE_DIRS).includes(e) && !Object.values(SNAPSHOT_DIRS).includes(e) && e !== LAYERS_DIR))
        throw new Error(`source "${root}" is not empty`);
    }
    await this.mountPool(pool);
    return { ...pool.config, source: root };
  }

  async mountPool(pool: PoolSpec): Promise<void> {
    const root = this.poolPath(pool);
    for (const dir of [root, ...Object.values(TYPE_DIRS).map((d) => join(root, d)), ...Object.values(SNAPSHOT_DIRS).map((d) => join(root, d))]) {
      await mkdir(dir, { recursive: true, mode: 0o711 });
      await chmod(dir, 0o711); // also a directory that existed (a pool "source")
    }
    await remountLayers(join(root, TYPE_DIRS.container));
  }

  async unmountPool(): Promise<void> {}

  async restrictAccess(pool: PoolSpec): Promise<number> {
    return closeVolumeDirs(this.poolPath(pool));
  }

  async deletePool(pool: PoolSpec): Promise<void> {
    const root = this.poolPath(pool);
    for (const d of [...Object.values(TYPE_DIRS), ...Object.values(SNAPSHOT_DIRS)]) await rmdir(join(root, d)).catch(() => {});
    for (const d of Object.values(TYPE_DIRS)) await rmdir(join(root, LAYERS_DIR, d)).catch(() => {});
    await rmdir(join(root, LAYERS_DIR)).catch(() => {});
    if (!pool.config.source || pool.config.source === join(this.defaultRoot, pool.name)) await rmdir(root).catch(() => {});
  }

  async poolResources(pool: PoolSpec): Promise<PoolResources> {
    const s = await statfs(this.poolPath(pool));
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

  /** The tree a volume's quota holds: what is written to it (its directory, or a layered one's layer). */
  private async quotaDir(vol: VolumeRef): Promise<string> {
    const path = this.mountPath(vol);
    return (await isLayered(path)) ? layerDir(path) : path;
  }

  private snapshotsDir(vol: VolumeRef): string {
    return join(this.poolPath(vol.pool), SNAPSHOT_DIRS[vol.type], vol.name);
  }

  async createVolume(vol: VolumeRef, from?: { tree: string }, signal?: AbortSignal): Promise<void> {
    const target = this.mountPath(vol);
    if (!from) {
      await mkdir(target, { mode: 0o700 });
      await assignProject(target);
      return;
    }
    // An image volume is never written (containers sit on it as layers, copies are made from
    // it): it shares the unpacked image's files by hard links where both are on one filesystem.
    await copyInto(from.tree, target, signal, { prepare: assignProject, link: vol.type === "image" });
  }

  async copyVolume(from: VolumeRef, to: VolumeRef, signal?: AbortSignal): Promise<void> {
    // A layered volume's copy is a layer over the same image: it costs what the source changed.
    if (from.type === to.type && (await isLayered(this.mountPath(from)))) return copyLayer(this.mountPath(from), this.mountPath(to), signal, assignProject);
    await copyInto(this.mountPath(from), this.mountPath(to), signal, { prepare: assignProject });
  }

  /**
   * Makes the container or VM volume `to` a layer over the image volume `image` (a VM's: a qcow2 disk layer), its tree owned as
   * `idmap` shifts it (none: as the image has it). False when this pool does not layer (the
   * `dir.overlay` key is off, or its path cannot be given to overlayfs): the caller copies.
   */
  async layerOnImage(image: VolumeRef, to: VolumeRef, idmap: readonly IdmapEntry[] | undefined, signal?: AbortSignal): Promise<boolean> {
    if (!parseBool(to.pool.config["dir.overlay"] ?? "true")) return false;
    if (to.type === "virtual-machine") {
      // A VM's disk: a qcow2 layer over the image volume's disk.
      await createDiskLayer(this.mountPath(image), this.mountPath(to), signal);
      return true;
    }
    if (to.type !== "container" || !layerablePath(this.poolPath(to.pool))) return false;
    await createLayer(this.mountPath(image), this.mountPath(to), idmap, signal, assignProject);
    return true;
  }

  async deleteVolume(vol: VolumeRef): Promise<void> {
    await releaseProject(await this.quotaDir(vol));
    if (await isLayered(this.mountPath(vol))) await removeLayer(this.mountPath(vol));
    // Also a copy that a crash interrupted.
    await rm(scratchPath(this.mountPath(vol), "creating"), { recursive: true, force: true });
    await rm(this.mountPath(vol), { recursive: true, force: true });
    await rm(this.snapshotsDir(vol), { recursive: true, force: true });
  }

  async renameVolume(vol: VolumeRef, newName: string): Promise<void> {
    const to = { ...vol, name: newName };
    const layered = await isLayered(this.mountPath(vol));
    if (layered) {
      await unmountLayer(this.mountPath(vol));
      await rename(layerDir(this.mountPath(vol)), layerDir(this.mountPath(to)));
    }
    await rename(this.mountPath(vol), this.mountPath(to));
    if (layered) await mountLayer(this.mountPath(to));
    const snaps = await lstat(this.snapshotsDir(vol)).catch(() => undefined);
    if (snaps) await rename(this.snapshotsDir(vol), this.snapshotsDir(to));
  }

  async mount(): Promise<void> {}
  async unmount(): Promise<void> {}

  /** The project's usage where the pool has project quotas; elsewhere measuring would take a full walk. */
  async usage(vol: VolumeRef): Promise<number | undefined> {
    return projectUsage(await this.quotaDir(vol));
  }

  async setQuota(vol: VolumeRef, bytes: number | undefined): Promise<void> {
    if (!(await projectQuotasEnabled(this.poolPath(vol.pool)))) {
      if (bytes === undefined) return;
      throw new Error(`the "dir" driver has quotas only on XFS or ext4 mounted with project quotas (prjquota); pool "${vol.pool.name}" is not`);
    }
    await setProjectLimit(await this.quotaDir(vol), bytes);
  }

  async createSnapshot(vol: VolumeRef, snapshot: string, signal?: AbortSignal): Promise<void> {
    await mkdir(this.snapshotsDir(vol), { recursive: true, mode: 0o700 });
    await copyInto(this.mountPath(vol), this.snapshotPath(vol, snapshot), signal);
  }

  async deleteSnapshot(vol: VolumeRef, snapshot: string): Promise<void> {
    await rm(scratchPath(this.snapshotPath(vol, snapshot), "creating"), { recursive: true, force: true });
    await rm(this.snapshotPath(vol, snapshot), { recursive: true, force: true });
    await rmdir(this.snapshotsDir(vol)).catch(() => {});
  }

  async renameSnapshot(vol: VolumeRef, snapshot: string, newName: string): Promise<void> {
    await rename(this.snapshotPath(vol, snapshot), this.snapshotPath(vol, newName));
  }

  /**
   * The snapshot's copy is made beside the volume, then swapped in: the old content goes only
   * once the new one is whole.
   */
  async restoreSnapshot(vol: VolumeRef, snapshot: string, signal?: AbortSignal): Promise<void> {
    const target = this.mountPath(vol);
    const fresh = scratchPath(target, "restoring");
    await rm(fresh, { recursive: true, force: true });
    await copyInto(this.snapshotPath(vol, snapshot), fresh, signal, { prepare: assignProject });
    const quotaDir = await this.quotaDir(vol);
    await carryProjectLimit(quotaDir, fresh);
    const old = scratchPath(target, "old");
    // A layered volume becomes a plain one: its overlay goes before its directory moves.
    await unmountLayer(target);
    // Done again after a crash between the two renames, the volume is then only at its old name.
    if (await lstat(target).catch(() => undefined)) {
      await rm(old, { recursive: true, force: true });
      await rename(target, old);
    }
    await rename(fresh, target);
    await releaseProject(quotaDir === target ? old : quotaDir);
    await rm(old, { recursive: true, force: true });
    await removeLayer(target);
  }

  async copyFromSnapshot(from: VolumeRef, snapshot: string, to: VolumeRef, signal?: AbortSignal): Promise<void> {
    await copyInto(this.snapshotPath(from, snapshot), this.mountPath(to), signal, { prepare: assignProject });
  }
}

/**
 * Makes every volume directory of the pool at `root` root's alone (0700 at most), closing what
 * an older Lodge left open; returns how many it had to close. Shared by the directory-tree drivers.
 */
export async function closeVolumeDirs(root: string): Promise<number> {
  let changed = 0;
  for (const d of Object.values(TYPE_DIRS)) {
    const dir = join(root, d);
    for (const name of await readdir(dir).catch(() => [])) {
      const path = join(dir, name);
      const st = await lstat(path);
      if (!st.isDirectory() || (st.mode & 0o077) === 0) continue;
      await chmod(path, st.mode & 0o700);
      changed++;
    }
  }
  return changed;
}

/**
 * Copies the tree `src` to `dest` (which must not exist) through a scratch name, with
 * ownership, modes, xattrs and hard links kept, sharing blocks where the filesystem can.
 * `prepare` readies the empty scratch directory before anything is copied in (its project).
 */
async function copyInto(
  src: string,
  dest: string,
  signal?: AbortSignal,
  steps: { prepare?: (dir: string) => Promise<void>; link?: boolean } = {},
): Promise<void> {
  if (await lstat(dest).catch(() => undefined)) throw new Error(`${dest} already exists`);
  const scratch = scratchPath(dest, "creating");
  await rm(scratch, { recursive: true, force: true });
  await mkdir(dirname(dest), { recursive: true, mode: 0o711 });
  try {
    await mkdir(scratch, { mode: 0o700 });
    await steps.prepare?.(scratch);
    // Into the directory made above: "src/." copies the contents and the top's own attributes.
    const copy = (how: string[]) => run("cp", ["-a", ...how, "--", `${src}/.`, scratch], { signal, dieWithDaemon: true });
    if (!steps.link) await copy(["--reflink=auto"]);
    else
      await copy(["--link"]).catch(async () => {
        // Another filesystem (EXDEV): a copy after all, into an emptied scratch.
        await rm(scratch, { recursive: true, force: true });
        await mkdir(scratch, { mode: 0o700 });
        await steps.prepare?.(scratch);
        await copy(["--reflink=auto"]);
      });
    await chmod(scratch, 0o700);
    await rename(scratch, dest);
  } catch (e) {
    await rm(scratch, { recursive: true, force: true });
    throw e;
  }
}
