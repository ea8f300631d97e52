import { chmod, lstat, mkdir, readdir, rename, rm, rmdir } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../../sys/exec.js";
import type { DriverCapabilities, PoolSpec, StorageDriver, VolumeRef } from "../driver.js";

/** Sub-directory of a pool per volume type, as LXD lays out a dir pool. */
const TYPE_DIRS: Record<VolumeRef["type"], string> = {
  container: "containers",
  "virtual-machine": "virtual-machines",
  image: "images",
  custom: "custom",
};

/**
 * The "dir" driver: volumes are plain directories under the pool's source directory. Copies
 * use `cp --reflink=auto`, which shares blocks on filesystems that can (XFS, btrfs) and falls
 * back to a real copy elsewhere.
 *
 * Access: the pool and its type directories are 0711 (an unprivileged container's root must
 * pass through them to its rootfs); each volume directory is 0700, root's alone. A volume
 * holds files that are host root's on disk (an idmapped rootfs stores container root as uid
 * 0, set-uid bits included), so no host user may reach below it; the instance driver opens
 * an instance's directory to that instance's root only (mode 0100), as LXD does.
 */
export class DirDriver implements StorageDriver {
  readonly name = "dir";
  readonly capabilities: DriverCapabilities = {
    instantSnapshots: false,
    cheapCopy: false,
    quotas: false,
    blockVolumes: false,
  };

  constructor(private readonly defaultRoot: string) {}

  async version(): Promise<string> {
    return "1";
  }

  /** Where a pool lives: its "source" config, else <LODGE_DIR>/storage-pools/<name>. */
  poolPath(pool: PoolSpec): string {
    return pool.config.source || join(this.defaultRoot, pool.name);
  }

  async createPool(pool: PoolSpec): Promise<void> {
    const root = this.poolPath(pool);
    for (const dir of [root, ...Object.values(TYPE_DIRS).map((d) => join(root, d))]) {
      await mkdir(dir, { recursive: true, mode: 0o711 });
      await chmod(dir, 0o711); // also a directory that existed (a pool "source")
    }
  }

  async restrictAccess(pool: PoolSpec): Promise<number> {
    let changed = 0;
    for (const d of Object.values(TYPE_DIRS)) {
      const dir = join(this.poolPath(pool), d);
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

  async deletePool(pool: PoolSpec): Promise<void> {
    const root = this.poolPath(pool);
    for (const d of Object.values(TYPE_DIRS)) await rmdir(join(root, d)).catch(() => {});
    if (!pool.config.source) await rmdir(root).catch(() => {});
  }

  mountPath(vol: VolumeRef): string {
    return join(this.poolPath(vol.pool), TYPE_DIRS[vol.type], vol.name);
  }

  async createVolume(vol: VolumeRef, from?: { tree: string }, signal?: AbortSignal): Promise<void> {
    const target = this.mountPath(vol);
    if (!from) {
      await mkdir(target, { mode: 0o700 });
      return;
    }
    // Copy into a scratch name, then rename: a crash never leaves a half-copied volume
    // under the real name.
    const scratch = `${target}.creating`;
    await rm(scratch, { recursive: true, force: true });
    try {
      await run("cp", ["-a", "--reflink=auto", "--", from.tree, scratch], { signal });
      await chmod(scratch, 0o700);
      await rename(scratch, target);
    } catch (e) {
      await rm(scratch, { recursive: true, force: true });
      throw e;
    }
  }

  async deleteVolume(vol: VolumeRef): Promise<void> {
    // Also a copy that a crash interrupted.
    await rm(`${this.mountPath(vol)}.creating`, { recursive: true, force: true });
    await rm(this.mountPath(vol), { recursive: true, force: true });
  }

  async renameVolume(vol: VolumeRef, newName: string): Promise<void> {
    await rename(this.mountPath(vol), this.mountPath({ ...vol, name: newName }));
  }

  async mount(): Promise<void> {}
  async unmount(): Promise<void> {}

  /** A dir pool has no cheap way to measure a tree (that would be a full walk per call). */
  async usage(): Promise<number | undefined> {
    return undefined;
  }
}
