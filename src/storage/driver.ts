/**
 * The storage driver contract. A driver knows how to lay out a pool on the host and how to
 * create, copy and remove volumes in it; the storage service owns the records, the choice of
 * pool and image caching, and asks a driver what it can do through `capabilities` rather than
 * by name. A new driver (btrfs, xfs/reflink, lvm, zfs) is one new file behind this interface.
 */

export type VolumeType = "container" | "virtual-machine" | "image" | "custom";

export interface PoolSpec {
  name: string;
  driver: string;
  /** Driver config (e.g. "source" for where the pool lives). */
  config: Record<string, string>;
}

export interface VolumeRef {
  pool: PoolSpec;
  type: VolumeType;
  /** Volume name; project-qualified for instance volumes ("default_c1"). */
  name: string;
}

export interface DriverCapabilities {
  /** Snapshots cost O(1) (copy-on-write). */
  instantSnapshots: boolean;
  /** Copies share blocks until written (reflink or CoW clone). */
  cheapCopy: boolean;
  /** Volumes can be size-limited. */
  quotas: boolean;
  /** Block volumes (for VM disks) are supported natively. */
  blockVolumes: boolean;
}

export interface StorageDriver {
  readonly name: string;
  readonly capabilities: DriverCapabilities;
  /** Version string of the underlying tools, for GET /1.0. */
  version(): Promise<string>;
  /** Makes the pool usable (creates its directories); idempotent. */
  createPool(pool: PoolSpec): Promise<void>;
  /**
   * Makes every volume of the pool unreachable for host users other than root, closing what
   * an older Lodge left open (its volume directories were 0711); called at each daemon start.
   * Returns how many volumes it had to close.
   */
  restrictAccess(pool: PoolSpec): Promise<number>;
  /** Removes the pool's own layout; the service refuses while volumes exist. */
  deletePool(pool: PoolSpec): Promise<void>;
  /** Creates a volume, filled from a directory tree when `from` is given (an unpacked image). */
  createVolume(vol: VolumeRef, from?: { tree: string }, signal?: AbortSignal): Promise<void>;
  deleteVolume(vol: VolumeRef): Promise<void>;
  renameVolume(vol: VolumeRef, newName: string): Promise<void>;
  /** Where the volume's filesystem is reachable on the host while in use. */
  mountPath(vol: VolumeRef): string;
  /** Makes the volume's filesystem available at mountPath (no-op for directory drivers). */
  mount(vol: VolumeRef): Promise<void>;
  unmount(vol: VolumeRef): Promise<void>;
  /** Bytes used by the volume, or undefined when the driver cannot tell cheaply. */
  usage(vol: VolumeRef): Promise<number | undefined>;
}
