import { join } from "node:path";
import { badRequest, conflict, notFound } from "../api/errors.js";
import type { DocumentStore } from "../state/store.js";
import type { StorageDriverInfo } from "../api/server.js";
import type { IdmapEntry } from "../sys/idmap.js";
import type { DriverCapabilities, PoolSpec, StorageDriver, VolumeRef, VolumeType } from "./driver.js";
import { BtrfsDriver, btrfsToolsPresent } from "./drivers/btrfs.js";
import { DirDriver } from "./drivers/dir.js";
import { resizeDisk } from "./disk-images.js";

export interface PoolRecord extends PoolSpec {
  description: string;
  status: "Created" | "Errored";
  /** "creating" until the driver has made the pool (undone at start when a crash cut it short). */
  phase?: "creating";
}

export interface VolumeRecord {
  pool: string;
  project: string;
  type: VolumeType;
  name: string;
  created_at: string;
  /** Image the volume was created from. */
  image?: string;
  /** Custom volumes: what the API shows and changes. */
  description?: string;
  config?: Record<string, string>;
  /** "creating" until the data is whole (a crash mid-create is undone at start). */
  phase?: "creating";
}

/** What the storage service needs from the image store. */
export interface ImageTrees {
  ensureUnpacked(fp: string, signal?: AbortSignal): Promise<string>;
  /** Whether any project still has the image (its image volumes are kept while it does). */
  exists(fp: string): Promise<boolean>;
}

export const POOLS = "storage-pools/";
export const VOLUMES = "storage-volumes/";
export const DEFAULT_POOL = "default";

/**
 * Pools and volumes: owns their records, picks the driver, fills instance volumes from the
 * image store's unpacked trees. Routes and the instances service call this, never a driver.
 */
export class StorageService {
  private readonly drivers: Map<string, StorageDriver>;

  constructor(
    private readonly opts: { dir: string; store: DocumentStore; images: ImageTrees; drivers?: StorageDriver[] },
  ) {
    const list = opts.drivers ?? defaultDrivers(join(opts.dir, "storage-pools"));
    this.drivers = new Map(list.map((d) => [d.name, d]));
  }

  /**
   * Creates the default dir pool on first start (LXD's `lxd init` default, without asking),
   * and closes every pool's volumes to host users (see StorageDriver.restrictAccess). Returns
   * the volumes that were open.
   */
  async init(): Promise<number> {
    const existing = await this.opts.store.get<PoolRecord>(POOLS + DEFAULT_POOL);
    if (!existing) {
      const pool: PoolRecord = { name: DEFAULT_POOL, driver: "dir", config: {}, description: "Default storage pool", status: "Created" };
      pool.config = await this.driver(pool).createPool(pool);
      await this.opts.store.put(POOLS + DEFAULT_POOL, pool, { revision: 0 });
    }
    let opened = 0;
    for (const p of await this.pools()) {
      if (p.phase === "creating") {
        // A create cut short by a crash: undone, as if it had failed.
        await this.driver(p).deletePool(p).catch(() => {});
        await this.opts.store.delete(POOLS + p.name);
        continue;
      }
      // A pool whose driver is missing or whose mount fails stays listed (status Errored
      // would be a later refinement); its instances fail to start with the driver's words.
      try {
        await this.driver(p).mountPool(p);
        opened += await this.driver(p).restrictAccess(p);
      } catch {
        /* reported when the pool is used */
      }
    }
    // Volumes whose making a crash cut short (custom volumes, copies): data and record go.
    for (const doc of await this.opts.store.list<VolumeRecord>(VOLUMES)) {
      const v = doc.value;
      if (v.phase !== "creating") continue;
      const pool = await this.pool(v.pool).catch(() => undefined);
      if (pool) await this.driver(pool).deleteVolume(this.ref(pool, v.type, v.project, v.name)).catch(() => {});
      await this.opts.store.delete(doc.key);
    }
    return opened;
  }

  /** The driver of a pool, for the pool and volume services beside this one. */
  driverOf(pool: PoolSpec): StorageDriver {
    return this.driver(pool);
  }

  async supportedDrivers(): Promise<StorageDriverInfo[]> {
    return Promise.all(
      [...this.drivers.values()].map(async (d) => ({ name: d.name, version: await d.version(), remote: false })),
    );
  }

  async pools(): Promise<PoolRecord[]> {
    return (await this.opts.store.list<PoolRecord>(POOLS)).map((d) => d.value);
  }

  async pool(name: string): Promise<PoolRecord> {
    const d = await this.opts.store.get<PoolRecord>(POOLS + name);
    if (!d) throw notFound(`Storage pool "${name}" not found`);
    return d.value;
  }

  /** What the pool's driver can do with it (quotas, cheap copies…). */
  async capabilities(name: string): Promise<DriverCapabilities> {
    const pool = await this.pool(name);
    return this.driver(pool).capabilities(pool);
  }

  private driver(pool: PoolSpec): StorageDriver {
    const d = this.drivers.get(pool.driver);
    if (!d) throw badRequest(`Storage driver "${pool.driver}" is not available on this host`);
    return d;
  }

  private ref(pool: PoolRecord, type: VolumeType, project: string, name: string): VolumeRef {
    return { pool, type, name: volumeName(project, name) };
  }

  private key(pool: string, project: string, type: VolumeType, name: string): string {
    return `${VOLUMES}${pool}/${project}/${type}/${name}`;
  }

  /**
   * Creates an instance's volume, filled from an image when given. The record is written
   * first with a revision check, so two creates of one name cannot both succeed; a failure
   * removes both record and data. `idmap` is the container's id map: a driver that layers
   * the volume over the image stores it shifted to that map, and `ownedAs` says so (the
   * instance's volatile.last_state.idmap); otherwise the tree holds the image's own ids.
   */
  async createInstanceVolume(
    poolName: string,
    project: string,
    name: string,
    type: "container" | "virtual-machine",
    image?: string,
    signal?: AbortSignal,
    idmap?: readonly IdmapEntry[],
  ): Promise<{ path: string; ref: VolumeRef; ownedAs?: readonly IdmapEntry[] }> {
    const pool = await this.pool(poolName);
    const driver = this.driver(pool);
    const ref = this.ref(pool, type, project, name);
    const key = this.key(poolName, project, type, name);
    const record: VolumeRecord = { pool: poolName, project, type, name, created_at: new Date().toISOString(), image };
    try {
      await this.opts.store.put(key, record, { revision: 0 });
    } catch {
      throw conflict(`A ${type} volume "${name}" already exists in pool "${poolName}"`);
    }
    try {
      if (image && (await driver.capabilities(pool)).imageVolumes) {
        // Unpacked once per pool into an image volume; instances are layers over it or cheap copies.
        const from = await this.imageVolume(pool, image, signal);
        if (await driver.layerOnImage?.(from, ref, idmap, signal)) return { path: driver.mountPath(ref), ref, ownedAs: idmap?.length ? idmap : undefined };
        await driver.copyVolume(from, ref, signal);
      } else {
        const tree = image ? await this.opts.images.ensureUnpacked(image, signal) : undefined;
        await driver.createVolume(ref, tree ? { tree } : undefined, signal);
      }
      return { path: driver.mountPath(ref), ref };
    } catch (e) {
      await driver.deleteVolume(ref).catch(() => {});
      await this.opts.store.delete(key);
      throw e;
    }
  }

  async deleteInstanceVolume(poolName: string, project: string, name: string, type: "container" | "virtual-machine") {
    const pool = await this.pool(poolName);
    const key = this.key(poolName, project, type, name);
    const image = (await this.opts.store.get<VolumeRecord>(key))?.value.image;
    await this.driver(pool).deleteVolume(this.ref(pool, type, project, name));
    await this.opts.store.delete(key);
    // The last user of an image volume whose image was deleted takes it along.
    if (image && !(await this.opts.images.exists(image))) await this.releaseImageVolume(poolName, image);
  }

  async renameInstanceVolume(
    poolName: string,
    project: string,
    name: string,
    newName: string,
    type: "container" | "virtual-machine",
  ): Promise<string> {
    const pool = await this.pool(poolName);
    const driver = this.driver(pool);
    const from = this.key(poolName, project, type, name);
    const to = this.key(poolName, project, type, newName);
    await this.opts.store.txn(async (tx) => {
      const rec = await tx.get<VolumeRecord>(from);
      if (!rec) throw notFound(`Volume "${name}" not found in pool "${poolName}"`);
      if (await tx.get(to)) throw conflict(`A ${type} volume "${newName}" already exists in pool "${poolName}"`);
      tx.delete(from);
      tx.put(to, { ...rec.value, name: newName });
    });
    await driver.renameVolume(this.ref(pool, type, project, name), volumeName(project, newName));
    return driver.mountPath(this.ref(pool, type, project, newName));
  }

  /** Host path of an instance volume (its rootfs is `<path>/rootfs`). */
  async instancePath(poolName: string, project: string, name: string, type: "container" | "virtual-machine") {
    const pool = await this.pool(poolName);
    return this.driver(pool).mountPath(this.ref(pool, type, project, name));
  }

  private readonly imageVolumes = new Map<string, Promise<VolumeRef>>();

  /**
   * The image volume of `fp` in `pool` (drivers with imageVolumes), made from the unpacked
   * image the first time; concurrent creates of instances from one image share the making.
   */
  private imageVolume(pool: PoolRecord, fp: string, signal?: AbortSignal): Promise<VolumeRef> {
    const id = `${pool.name}/${fp}`;
    let p = this.imageVolumes.get(id);
    if (!p) {
      p = (async () => {
        const ref: VolumeRef = { pool, type: "image", name: fp };
        const key = this.key(pool.name, "default", "image", fp);
        if (await this.opts.store.get(key)) return ref;
        const driver = this.driver(pool);
        await driver.deleteVolume(ref).catch(() => {}); // a half one a crash left
        await driver.createVolume(ref, { tree: await this.opts.images.ensureUnpacked(fp, signal) }, signal);
        await this.opts.store.put(key, { pool: pool.name, project: "default", type: "image", name: fp, created_at: new Date().toISOString(), image: fp } satisfies VolumeRecord);
        return ref;
      })();
      this.imageVolumes.set(id, p);
      p.finally(() => this.imageVolumes.delete(id)).catch(() => {});
    }
    return p;
  }

  /**
   * The image `fp` was deleted: its image volumes go from every pool, except where an instance
   * volume made from it still is (a layer over it, or a clone): that one goes with the last.
   */
  async releaseImage(fp: string): Promise<void> {
    for (const v of (await this.volumes()).filter((v) => v.type === "image" && v.name === fp)) await this.releaseImageVolume(v.pool, fp);
  }

  private async releaseImageVolume(poolName: string, fp: string): Promise<void> {
    const vols = await this.volumes(poolName);
    if (!vols.some((v) => v.type === "image" && v.name === fp)) return;
    if (vols.some((v) => v.type !== "image" && v.image === fp)) return;
    await this.deleteImageVolume(poolName, fp);
  }

  async deleteImageVolume(poolName: string, fp: string): Promise<void> {
    const pool = await this.pool(poolName);
    await this.driver(pool).deleteVolume({ pool, type: "image", name: fp });
    await this.opts.store.delete(this.key(poolName, "default", "image", fp));
  }

  /** Store key of a volume record. */
  volumeKey(pool: string, project: string, type: VolumeType, name: string): string {
    return this.key(pool, project, type, name);
  }

  /** Limits an instance's volume to `bytes` (its root disk's size); undefined lifts the limit. */
  async setVolumeQuota(ref: VolumeRef, bytes: number | undefined): Promise<void> {
    // A VM's root disk size is its disk image's size, on every driver.
    if (ref.type === "virtual-machine") {
      if (bytes !== undefined) await resizeDisk(this.driver(ref.pool).mountPath(ref), bytes);
      return;
    }
    await this.driver(ref.pool).setQuota(ref, bytes);
  }

  /** Bytes an instance's volume uses, or undefined where its driver cannot tell cheaply. */
  async instanceUsage(poolName: string, project: string, name: string, type: "container" | "virtual-machine"): Promise<number | undefined> {
    const pool = await this.pool(poolName);
    return this.driver(pool).usage(this.ref(pool, type, project, name));
  }

  /** The driver's reference to an instance's volume. */
  async instanceVolume(poolName: string, project: string, name: string, type: "container" | "virtual-machine"): Promise<VolumeRef> {
    return this.ref(await this.pool(poolName), type, project, name);
  }

  /** Takes a snapshot of an instance volume (the caller keeps the snapshot's record). */
  async snapshotInstanceVolume(ref: VolumeRef, snapshot: string, signal?: AbortSignal): Promise<void> {
    await this.driver(ref.pool).createSnapshot(ref, snapshot, signal);
  }

  async deleteVolumeSnapshot(ref: VolumeRef, snapshot: string): Promise<void> {
    await this.driver(ref.pool).deleteSnapshot(ref, snapshot);
  }

  async renameVolumeSnapshot(ref: VolumeRef, snapshot: string, newName: string): Promise<void> {
    await this.driver(ref.pool).renameSnapshot(ref, snapshot, newName);
  }

  async restoreVolumeSnapshot(ref: VolumeRef, snapshot: string, signal?: AbortSignal): Promise<void> {
    await this.driver(ref.pool).restoreSnapshot(ref, snapshot, signal);
  }

  snapshotPath(ref: VolumeRef, snapshot: string): string {
    return this.driver(ref.pool).snapshotPath(ref, snapshot);
  }

  /**
   * Makes a new instance volume as an independent copy of another instance's volume (or of
   * one of its snapshots), in the same pool or another: the same-pool copy is the driver's
   * (a snapshot or reflink where it has them), across pools the tree is copied. Record first
   * (so two copies to one name cannot both win), removed with the data on failure.
   */
  async copyInstanceVolume(opts: {
    from: VolumeRef;
    fromSnapshot?: string;
    toPool: string;
    project: string;
    name: string;
    type: "container" | "virtual-machine";
    image?: string;
    signal?: AbortSignal;
  }): Promise<{ path: string; ref: VolumeRef }> {
    const pool = await this.pool(opts.toPool);
    const driver = this.driver(pool);
    const ref = this.ref(pool, opts.type, opts.project, opts.name);
    const key = this.key(opts.toPool, opts.project, opts.type, opts.name);
    // A same-pool copy may share the source's image volume (a layer over it): it keeps it alive too.
    const sourceImage =
      opts.from.pool.name === opts.toPool
        ? (await this.volumes(opts.toPool)).find((v) => v.type === opts.from.type && volumeName(v.project, v.name) === opts.from.name)?.image
        : undefined;
    const record: VolumeRecord = { pool: opts.toPool, project: opts.project, type: opts.type, name: opts.name, created_at: new Date().toISOString(), image: opts.image ?? sourceImage };
    try {
      await this.opts.store.put(key, record, { revision: 0 });
    } catch {
      throw conflict(`A ${opts.type} volume "${opts.name}" already exists in pool "${opts.toPool}"`);
    }
    try {
      const src = this.driver(opts.from.pool);
      if (opts.from.pool.name === pool.name) {
        if (opts.fromSnapshot) await driver.copyFromSnapshot(opts.from, opts.fromSnapshot, ref, opts.signal);
        else await driver.copyVolume(opts.from, ref, opts.signal);
      } else {
        const tree = opts.fromSnapshot ? src.snapshotPath(opts.from, opts.fromSnapshot) : src.mountPath(opts.from);
        await driver.createVolume(ref, { tree }, opts.signal);
      }
      return { path: driver.mountPath(ref), ref };
    } catch (e) {
      await driver.deleteVolume(ref).catch(() => {});
      await this.opts.store.delete(key);
      throw e;
    }
  }

  async volumes(poolName?: string): Promise<VolumeRecord[]> {
    return (await this.opts.store.list<VolumeRecord>(poolName ? `${VOLUMES}${poolName}/` : VOLUMES)).map((d) => d.value);
  }
}

/** The drivers this host can run: dir always, btrfs where btrfs-progs is installed. */
export function defaultDrivers(poolsDir: string): StorageDriver[] {
  const list: StorageDriver[] = [new DirDriver(poolsDir)];
  if (btrfsToolsPresent()) list.push(new BtrfsDriver(poolsDir));
  return list;
}

/** LXD's on-disk volume name: the project is part of it, except for "default". */
export function volumeName(project: string, name: string): string {
  return project === "default" ? name : `${project}_${name}`;
}
