/**
 * The storage driver contract. A driver knows how to lay out a pool on the host and how to
 * create, copy, snapshot and remove volumes in it; the storage service owns the records, the
 * choice of pool and image caching, and asks a driver what it can do with a pool through
 * `capabilities(pool)` rather than by name. A new driver (btrfs, xfs/reflink, lvm, zfs) is
 * one new file behind this interface.
 *
 * Volumes of every type hold a filesystem tree at mountPath() (an instance's has `rootfs/`,
 * `metadata.yaml` and `templates/` inside, as LXD lays them out). Snapshots are read-only
 * copies of a volume at a point in time, each at snapshotPath(); the service keeps their
 * records and names.
 */
import type { KeyTable } from "../config/keys.js";
import type { IdmapEntry } from "../sys/idmap.js";

export type VolumeType = "container" | "virtual-machine" | "image" | "custom";

export interface PoolSpec {
  name: string;
  driver: string;
  /** Driver config (e.g. "source" for where the pool lives, "size" for a loop file). */
  config: Record<string, string>;
}

export interface VolumeRef {
  pool: PoolSpec;
  type: VolumeType;
  /** Volume name; project-qualified for instance and custom volumes ("default_c1" outside "default"). */
  name: string;
  /** The volume's own config (size, …), when the call needs it. */
  config?: Record<string, string>;
}

export interface DriverCapabilities {
  /** Snapshots cost O(1) (copy-on-write). */
  instantSnapshots: boolean;
  /** Copies share blocks until written (reflink or CoW clone). */
  cheapCopy: boolean;
  /** Volumes can be size-limited (a volume's `size`, an instance's root disk `size`). */
  quotas: boolean;
  /** Block volumes (for VM disks) are supported natively. */
  blockVolumes: boolean;
  /**
   * Images are unpacked once per pool into an image volume, and instances are made from it
   * with copyVolume (a snapshot, where the driver has them) rather than from the image's tree.
   */
  imageVolumes: boolean;
  /** exportOptimized/importOptimized exist (a driver-native stream, e.g. btrfs send). */
  optimizedBackups: boolean;
}

/** Space and inodes of a pool, as /1.0/storage-pools/<p>/resources shows them. */
export interface PoolResources {
  space: { used: number; total: number };
  inodes: { used: number; total: number };
}

export interface StorageDriver {
  readonly name: string;
  /**
   * What the driver can do with this pool: most of it is the driver's, some depends on where
   * the pool is (the dir driver has quotas only on a filesystem with project quotas).
   */
  capabilities(pool: PoolSpec): Promise<DriverCapabilities>;
  /** Pool config keys the driver accepts (LXD's names: source, size, btrfs.mount_options, …). */
  readonly poolKeys: KeyTable;
  /** Version string of the underlying tools, for GET /1.0. */
  version(): Promise<string>;
  /**
   * Makes the pool (its directory, or its loop file and filesystem), and fills in the config
   * it chose (e.g. `source` and `size` of a loop file) in the returned config. Idempotent for
   * a pool that already exists with that config.
   */
  createPool(pool: PoolSpec): Promise<Record<string, string>>;
  /** Makes an existing pool usable after a daemon or host restart (mounts it); idempotent. */
  mountPool(pool: PoolSpec): Promise<void>;
  /** Unmounts the pool (daemon shutdown needs not: volumes stay in use by instances). */
  unmountPool(pool: PoolSpec): Promise<void>;
  /**
   * Makes every volume of the pool unreachable for host users other than root, closing what
   * an older Lodge left open (its volume directories were 0711); called at each daemon start.
   * Returns how many volumes it had to close.
   */
  restrictAccess(pool: PoolSpec): Promise<number>;
  /** Removes the pool's own layout (and a loop file it made); the service refuses while volumes exist. */
  deletePool(pool: PoolSpec): Promise<void>;
  poolResources(pool: PoolSpec): Promise<PoolResources>;

  /** Creates a volume, filled from a directory tree when `from` is given (an unpacked image). */
  createVolume(vol: VolumeRef, from?: { tree: string }, signal?: AbortSignal): Promise<void>;
  /**
   * Makes `to` an independent copy of `from` (same pool): a snapshot or reflink where the
   * driver has them, else a full copy. Nothing of a failed copy is left under `to`.
   */
  copyVolume(from: VolumeRef, to: VolumeRef, signal?: AbortSignal): Promise<void>;
  /**
   * Optional: makes the container volume `to` a copy-on-write layer over the image volume
   * `image`, its tree owned as `idmap` shifts it (none: as the image has it), in O(1).
   * Resolves false when this pool does not layer; the caller then copies with copyVolume.
   */
  layerOnImage?(image: VolumeRef, to: VolumeRef, idmap: readonly IdmapEntry[] | undefined, signal?: AbortSignal): Promise<boolean>;
  /** Deletes the volume and all its snapshots. */
  deleteVolume(vol: VolumeRef): Promise<void>;
  /** Renames the volume and its snapshots with it. */
  renameVolume(vol: VolumeRef, newName: string): Promise<void>;
  /** Where the volume's filesystem is reachable on the host while in use. */
  mountPath(vol: VolumeRef): string;
  /** Makes the volume's filesystem available at mountPath (no-op for directory drivers). */
  mount(vol: VolumeRef): Promise<void>;
  unmount(vol: VolumeRef): Promise<void>;
  /** Bytes used by the volume, or undefined when the driver cannot tell cheaply. */
  usage(vol: VolumeRef): Promise<number | undefined>;
  /** Limits the volume to `bytes` (undefined lifts the limit); only with capabilities.quotas. */
  setQuota(vol: VolumeRef, bytes: number | undefined): Promise<void>;

  /** Where a snapshot's (read-only) tree is. */
  snapshotPath(vol: VolumeRef, snapshot: string): string;
  /** Takes a read-only snapshot of the volume; nothing is left of a failed one. */
  createSnapshot(vol: VolumeRef, snapshot: string, signal?: AbortSignal): Promise<void>;
  deleteSnapshot(vol: VolumeRef, snapshot: string): Promise<void>;
  renameSnapshot(vol: VolumeRef, snapshot: string, newName: string): Promise<void>;
  /** Puts the volume back to the snapshot's content (the volume is not in use). */
  restoreSnapshot(vol: VolumeRef, snapshot: string, signal?: AbortSignal): Promise<void>;
  /** Makes `to` (same pool) an independent, writable copy of a snapshot of `from`. */
  copyFromSnapshot(from: VolumeRef, snapshot: string, to: VolumeRef, signal?: AbortSignal): Promise<void>;

  /**
   * Optimized backups (only with capabilities.optimizedBackups): the driver's own stream of the
   * volume and of its `snapshots` (oldest first), written into `dir` as files named as LXD
   * names them in a backup tarball below backup/ (e.g. container.bin, snapshots/<s>.bin);
   * returns those names.
   */
  exportOptimized?(vol: VolumeRef, snapshots: string[], dir: string, signal?: AbortSignal): Promise<string[]>;
  /**
   * Makes `vol` (which must not exist) and its `snapshots` from what exportOptimized wrote into
   * `dir`; nothing of a failed import is left.
   */
  importOptimized?(vol: VolumeRef, snapshots: string[], dir: string, signal?: AbortSignal): Promise<void>;
}
