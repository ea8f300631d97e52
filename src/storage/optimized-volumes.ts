/**
 * Instance volumes in and out of a driver's own backup format (StorageDriver.exportOptimized /
 * importOptimized: btrfs send streams), beside the storage service: the same records, the
 * same rule that a failure leaves neither data nor record.
 */
import { badRequest, conflict } from "../api/errors.js";
import type { DocumentStore } from "../state/store.js";
import type { VolumeRef } from "./driver.js";
import type { StorageService, VolumeRecord } from "./service.js";

type Storage = Pick<StorageService, "pool" | "driverOf" | "instanceVolume" | "volumeKey">;

/**
 * Whether an optimized backup written by a `backend` driver can be restored into `poolName`:
 * only by a driver of that name that has optimized backups (as LXD: the stream is that
 * driver's own format). Throws a 400 naming both drivers otherwise.
 */
export async function checkOptimizedTarget(storage: Storage, poolName: string, backend: string): Promise<void> {
  const pool = await storage.pool(poolName);
  const driver = storage.driverOf(pool);
  if (driver.name !== backend || !(await driver.capabilities(pool)).optimizedBackups || !driver.importOptimized)
    throw badRequest(
      `Optimized backup storage driver "${backend}" differs from the target storage pool driver "${pool.driver}" (pool "${pool.name}"): ` +
        "restore it into a pool of that driver, or export the instance again without --optimized-storage",
    );
}

/**
 * Makes an instance volume and its snapshots from an optimized backup's streams in `dir`. The
 * record is written first (so two imports to one name cannot both win) and removed with the
 * data if the driver fails.
 */
export async function importOptimizedInstanceVolume(
  d: { storage: Storage; store: DocumentStore },
  opts: { pool: string; project: string; name: string; backend: string; snapshots: string[]; dir: string; signal?: AbortSignal },
): Promise<{ path: string; ref: VolumeRef }> {
  await checkOptimizedTarget(d.storage, opts.pool, opts.backend);
  const pool = await d.storage.pool(opts.pool);
  const driver = d.storage.driverOf(pool);
  const ref = await d.storage.instanceVolume(opts.pool, opts.project, opts.name, "container");
  const key = d.storage.volumeKey(opts.pool, opts.project, "container", opts.name);
  const record: VolumeRecord = { pool: opts.pool, project: opts.project, type: "container", name: opts.name, created_at: new Date().toISOString() };
  try {
    await d.store.put(key, record, { revision: 0 });
  } catch {
    throw conflict(`A container volume "${opts.name}" already exists in pool "${opts.pool}"`);
  }
  try {
    await driver.importOptimized!(ref, opts.snapshots, opts.dir, opts.signal);
    return { path: driver.mountPath(ref), ref };
  } catch (e) {
    await driver.deleteVolume(ref).catch(() => {});
    await d.store.delete(key);
    throw e;
  }
}

/** Writes the optimized streams of an instance volume and of its `snapshots` into `dir`. */
export async function exportOptimizedInstanceVolume(storage: Storage, ref: VolumeRef, snapshots: string[], dir: string, signal?: AbortSignal): Promise<string[]> {
  const driver = storage.driverOf(ref.pool);
  if (!(await driver.capabilities(ref.pool)).optimizedBackups || !driver.exportOptimized)
    throw badRequest(`Optimized backups need a storage driver that has them; pool "${ref.pool.name}" (${driver.name}) has none`);
  return driver.exportOptimized(ref, snapshots, dir, signal);
}
