/**
 * Custom storage volumes (/1.0/storage-pools/<p>/volumes/custom/…): create (empty, or a copy
 * of another volume or snapshot), change, restore, rename, move between pools, delete, and
 * their snapshots. Instances attach them as `disk` devices (`pool=`, `source=`). Every change
 * that makes data writes its record "creating" first and removes data and record together on
 * failure; a volume in use cannot be deleted, renamed or moved.
 */
import { badRequest, conflict, notFound, preconditionFailed } from "../api/errors.js";
import { etagOf } from "../api/etag.js";
import type { StorageVolume, StorageVolumePost, StorageVolumePut, StorageVolumeSnapshot, StorageVolumesPost } from "../api/storage.js";
import { parseSize, validateConfig, type KeyTable } from "../config/keys.js";
import type { EventHub } from "../core/events.js";
import { KeyedLock } from "../instances/locks.js";
import type { ManagedVolumes } from "../instances/devices/volumes.js";
import type { DocumentStore } from "../state/store.js";
import type { VolumeRef } from "./driver.js";
import { syncTree } from "./sync-tree.js";
import { volumeName, type PoolRecord, type StorageService, type VolumeRecord } from "./service.js";
import { volumeUrl, volumeUsers, type StorageUserSource } from "./users.js";

const LOCK_TIMEOUT_MS = 60_000;

const VOLUME_KEYS: KeyTable = {
  size: { type: "size", description: "Size limit of the volume (drivers with quotas)" },
  "security.shifted": { type: "bool", description: "Show files with the instance's ids (Lodge always attaches custom volumes through an idmapped mount)" },
};

interface SnapshotRecord {
  name: string;
  description: string;
  config: Record<string, string>;
  created_at: string;
  expires_at: string;
  phase?: "creating";
}

const NEVER = "0001-01-01T00:00:00Z";

export function checkVolumeName(name: unknown, what = "storage volume"): string {
  if (typeof name !== "string" || name === "") throw badRequest(`A ${what} name is required`);
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) throw badRequest(`Invalid ${what} name "${name}": letters, digits, "_", "." and "-", starting with a letter or digit`);
  return name;
}

export class CustomVolumes implements ManagedVolumes {
  readonly locks = new KeyedLock();

  constructor(private readonly d: { store: DocumentStore; storage: StorageService; users: StorageUserSource; events: EventHub }) {}

  private key(pool: string, project: string, name: string): string {
    return this.d.storage.volumeKey(pool, project, "custom", name);
  }

  private snapKey(pool: string, project: string, name: string, snap: string): string {
    return `storage-volume-snapshots/${pool}/${project}/custom/${name}/${snap}`;
  }

  private snapPrefix(pool: string, project: string, name: string): string {
    return `storage-volume-snapshots/${pool}/${project}/custom/${name}/`;
  }

  private ref(pool: PoolRecord, project: string, name: string, config?: Record<string, string>): VolumeRef {
    return { pool, type: "custom", name: volumeName(project, name), config };
  }

  etag(v: VolumeRecord): string {
    return etagOf({ config: v.config ?? {}, description: v.description ?? "" });
  }

  private async view(v: VolumeRecord): Promise<StorageVolume> {
    return {
      name: v.name,
      type: v.type,
      description: v.description ?? "",
      config: v.config ?? {},
      content_type: "filesystem",
      created_at: v.created_at,
      location: "none",
      project: v.project,
      used_by: v.type === "custom" ? await volumeUsers(this.d.users, v.project, v.pool, v.name) : v.type === "image" ? [`/1.0/images/${v.name}`] : [`/1.0/instances/${v.name}`],
    };
  }

  /** Volumes of a pool (all types, as LXD lists them), optionally of one type. */
  async list(pool: string, project: string, type?: string): Promise<StorageVolume[]> {
    await this.d.storage.pool(pool);
    const all = (await this.d.storage.volumes(pool)).filter((v) => !v.phase && (v.type === "image" || v.project === project) && (!type || v.type === type));
    const out: StorageVolume[] = [];
    for (const v of all) {
      out.push(await this.view(v));
      // As LXD: a custom volume's snapshots are listed with it, named VOLUME/SNAPSHOT.
      if (v.type === "custom")
        for (const s of await this.snapshots(pool, project, v.name))
          out.push({ name: `${v.name}/${s.name}`, type: "custom", description: s.description, config: s.config, content_type: "filesystem", created_at: s.created_at, location: "none", project, used_by: [] });
    }
    return out;
  }

  async record(pool: string, project: string, name: string): Promise<VolumeRecord> {
    const doc = await this.d.store.get<VolumeRecord>(this.key(pool, project, name));
    if (!doc || doc.value.phase) throw notFound(`Storage volume "${name}" not found in pool "${pool}"`);
    return doc.value;
  }

  async get(pool: string, project: string, type: string, name: string): Promise<{ volume: StorageVolume; etag?: string }> {
    if (type !== "custom") {
      const v = (await this.d.storage.volumes(pool)).find((x) => x.type === type && x.name === name && !x.phase);
      if (!v) throw notFound(`Storage volume "${name}" of type "${type}" not found in pool "${pool}"`);
      return { volume: await this.view(v) };
    }
    const v = await this.record(pool, project, name);
    return { volume: await this.view(v), etag: this.etag(v) };
  }

  /** Usage of a volume of any type (custom, or an instance's or image's). */
  async state(pool: string, project: string, type: string, name: string): Promise<{ usage: { used: number; total: number } }> {
    const p = await this.d.storage.pool(pool);
    if (type !== "custom") {
      const v = (await this.d.storage.volumes(pool)).find((x) => x.type === type && x.name === name && !x.phase && (type === "image" || x.project === project));
      if (!v) throw notFound(`Storage volume "${name}" of type "${type}" not found in pool "${pool}"`);
      const used = (await this.d.storage.driverOf(p).usage({ pool: p, type: v.type, name: type === "image" ? name : volumeName(project, name) })) ?? 0;
      return { usage: { used, total: -1 } };
    }
    const v = await this.record(pool, project, name);
    const used = (await this.d.storage.driverOf(p).usage(this.ref(p, project, name))) ?? 0;
    return { usage: { used, total: v.config?.size ? parseSize(v.config.size) : -1 } };
  }

  private async validateConfig(p: PoolRecord, config: unknown): Promise<Record<string, string>> {
    if (config !== undefined && config !== null && (typeof config !== "object" || Array.isArray(config))) throw badRequest("config must be a map of keys to values");
    const out = validateConfig(VOLUME_KEYS, (config ?? {}) as Record<string, unknown>, ["user."], "storage volume");
    if (out.size && !(await this.d.storage.capabilities(p.name)).quotas) throw badRequest(`Storage pool "${p.name}" (driver ${p.driver}) has no quotas: "size" cannot be set on its volumes`);
    return out;
  }

  async create(poolName: string, project: string, req: StorageVolumesPost, signal?: AbortSignal): Promise<VolumeRecord> {
    if (!req || typeof req !== "object" || Array.isArray(req)) throw badRequest("The request body must be a storage volume object");
    const name = checkVolumeName(req.name);
    if ((req.type ?? "custom") !== "custom") throw badRequest(`Only custom volumes can be created directly (not "${req.type}")`);
    if ((req.content_type ?? "filesystem") !== "filesystem") throw badRequest(`Volume content type "${req.content_type}" is not supported (filesystem only)`);
    const pool = await this.d.storage.pool(poolName);
    const config = await this.validateConfig(pool, req.config);
    const source = req.source && req.source.type ? req.source : undefined;
    if (source && source.type !== "copy") throw badRequest(`Volume source type "${source.type}" is not supported (copy only)`);
    return this.locks.with(`${poolName}/${project}/${name}`, `Storage volume "${name}"`, LOCK_TIMEOUT_MS, async () => {
      const record: VolumeRecord = { pool: poolName, project, type: "custom", name, created_at: new Date().toISOString(), description: req.description ?? "", config, phase: "creating" };
      try {
        await this.d.store.put(this.key(poolName, project, name), record, { revision: 0 });
      } catch {
        throw conflict(`Storage volume "${name}" already exists in pool "${poolName}"`);
      }
      const driver = this.d.storage.driverOf(pool);
      const ref = this.ref(pool, project, name, config);
      try {
        if (source) {
          const [srcName, srcSnap] = String(source.name ?? "").split("/");
          const srcPool = await this.d.storage.pool(source.pool || poolName);
          await this.record(srcPool.name, project, srcName!);
          if (srcSnap) await this.snapshotRecord(srcPool.name, project, srcName!, srcSnap);
          const from = this.ref(srcPool, project, srcName!);
          const src = this.d.storage.driverOf(srcPool);
          const carried = srcSnap || source.volume_only ? [] : await this.snapshots(srcPool.name, project, srcName!);
          // With snapshots: the new volume starts as the oldest one, and each later state is
          // synced in and snapshotted there, ending with the source's current state.
          const first = srcSnap ?? carried[0]?.name;
          if (srcPool.name === poolName) {
            if (first) await driver.copyFromSnapshot(from, first, ref, signal);
            else await driver.copyVolume(from, ref, signal);
          } else await driver.createVolume(ref, { tree: first ? src.snapshotPath(from, first) : src.mountPath(from) }, signal);
          for (const [i, s] of carried.entries()) {
            if (i > 0) await syncTree(src.snapshotPath(from, s.name), driver.mountPath(ref), signal);
            await driver.createSnapshot(ref, s.name, signal);
            await this.d.store.put(this.snapKey(poolName, project, name, s.name), { ...s, created_at: s.created_at });
          }
          if (carried.length > 0) await syncTree(src.mountPath(from), driver.mountPath(ref), signal);
        } else await driver.createVolume(ref, undefined, signal);
        if (config.size) await driver.setQuota(ref, parseSize(config.size));
        const ready = { ...record };
        delete ready.phase;
        await this.d.store.put(this.key(poolName, project, name), ready);
        this.d.events.lifecycle("storage-volume-created", volumeUrl(poolName, "custom", name, project), {}, project);
        return ready;
      } catch (e) {
        await driver.deleteVolume(ref).catch(() => {});
        for (const k of await this.d.store.list(this.snapPrefix(poolName, project, name))) await this.d.store.delete(k.key);
        await this.d.store.delete(this.key(poolName, project, name));
        throw e;
      }
    });
  }

  async update(poolName: string, project: string, name: string, put: StorageVolumePut, mode: "put" | "patch", ifMatch?: string, signal?: AbortSignal): Promise<void> {
    if (!put || typeof put !== "object" || Array.isArray(put)) throw badRequest("The request body must be a storage volume object");
    await this.locks.with(`${poolName}/${project}/${name}`, `Storage volume "${name}"`, LOCK_TIMEOUT_MS, async () => {
      const before = await this.record(poolName, project, name);
      if (ifMatch && ifMatch !== this.etag(before)) throw preconditionFailed(`Storage volume "${name}" changed since it was read (ETag mismatch)`);
      const pool = await this.d.storage.pool(poolName);
      const ref = this.ref(pool, project, name);
      if (put.restore) {
        await this.snapshotRecord(poolName, project, name, put.restore);
        const users = await volumeUsers(this.d.users, project, poolName, name);
        if (users.length) throw badRequest(`Storage volume "${name}" is attached (${users.join(", ")}); detach it before restoring a snapshot`);
        await this.d.storage.driverOf(pool).restoreSnapshot(ref, put.restore, signal);
        return;
      }
      let config = mode === "put" ? await this.validateConfig(pool, put.config ?? {}) : { ...(before.config ?? {}), ...(await this.validateConfig(pool, put.config ?? {})) };
      config = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== ""));
      if (config.size !== before.config?.size) await this.d.storage.driverOf(pool).setQuota(ref, config.size ? parseSize(config.size) : undefined);
      if (typeof (put.description ?? "") !== "string") throw badRequest("description must be a string");
      const description = put.description ?? (mode === "put" ? "" : (before.description ?? ""));
      await this.d.store.put(this.key(poolName, project, name), { ...before, config, description });
    });
    this.d.events.lifecycle("storage-volume-updated", volumeUrl(poolName, "custom", name, project), {}, project);
  }

  /** Renames the volume, or moves it to another pool (`pool`), when nothing attaches it. */
  async rename(poolName: string, project: string, name: string, req: StorageVolumePost, signal?: AbortSignal): Promise<{ pool: string; name: string }> {
    if (!req || typeof req !== "object") throw badRequest("The request body must be an object");
    if (req.migration) throw badRequest("Volume migration between servers is not supported yet");
    const target = checkVolumeName(req.name ?? name);
    const toPool = req.pool || poolName;
    if (target === name && toPool === poolName) throw badRequest("Give a new name or a new pool");
    const users = await volumeUsers(this.d.users, project, poolName, name);
    if (users.length) throw badRequest(`Storage volume "${name}" is in use by ${users.join(", ")}; detach it first`);
    if (toPool !== poolName) {
      await this.create(toPool, project, { name: target, description: (await this.record(poolName, project, name)).description, config: (await this.record(poolName, project, name)).config, source: { type: "copy", name, pool: poolName, volume_only: req.volume_only } }, signal);
      await this.delete(poolName, project, name);
      return { pool: toPool, name: target };
    }
    await this.locks.with(`${poolName}/${project}/${name}`, `Storage volume "${name}"`, LOCK_TIMEOUT_MS, async () => {
      const v = await this.record(poolName, project, name);
      if (await this.d.store.get(this.key(poolName, project, target))) throw conflict(`Storage volume "${target}" already exists in pool "${poolName}"`);
      const pool = await this.d.storage.pool(poolName);
      await this.d.storage.driverOf(pool).renameVolume(this.ref(pool, project, name), volumeName(project, target));
      const snaps = await this.d.store.list<SnapshotRecord>(this.snapPrefix(poolName, project, name));
      await this.d.store.txn((tx) => {
        tx.delete(this.key(poolName, project, name));
        tx.put(this.key(poolName, project, target), { ...v, name: target });
        for (const s of snaps) {
          tx.delete(s.key);
          tx.put(this.snapKey(poolName, project, target, s.value.name), s.value);
        }
      });
    });
    this.d.events.lifecycle("storage-volume-renamed", volumeUrl(poolName, "custom", target, project), { old_name: name }, project);
    return { pool: poolName, name: target };
  }

  async delete(poolName: string, project: string, name: string): Promise<void> {
    await this.locks.with(`${poolName}/${project}/${name}`, `Storage volume "${name}"`, LOCK_TIMEOUT_MS, async () => {
      await this.record(poolName, project, name);
      const users = await volumeUsers(this.d.users, project, poolName, name);
      if (users.length) throw badRequest(`The storage volume is still in use: "${name}" is attached to ${users.join(", ")}`);
      const pool = await this.d.storage.pool(poolName);
      await this.d.storage.driverOf(pool).deleteVolume(this.ref(pool, project, name));
      const snaps = await this.d.store.list(this.snapPrefix(poolName, project, name));
      await this.d.store.txn((tx) => {
        tx.delete(this.key(poolName, project, name));
        for (const s of snaps) tx.delete(s.key);
      });
    });
    this.d.events.lifecycle("storage-volume-deleted", volumeUrl(poolName, "custom", name, project), {}, project);
  }

  /** ManagedVolumes (instances/devices/volumes.ts): the host path of a custom volume, if it exists. */
  async volumePath(project: string, poolName: string, name: string): Promise<string | undefined> {
    return this.path(poolName, project, name).catch(() => undefined);
  }

  /** Host path of a custom volume, for a disk device (`pool=`, `source=`). */
  async path(poolName: string, project: string, name: string): Promise<string> {
    await this.record(poolName, project, name);
    const pool = await this.d.storage.pool(poolName);
    return this.d.storage.driverOf(pool).mountPath(this.ref(pool, project, name));
  }

  /** At daemon start: snapshots whose making a crash cut short are removed. */
  async recover(): Promise<void> {
    for (const doc of await this.d.store.list<SnapshotRecord>("storage-volume-snapshots/")) {
      const [, pool, project, , name, snap] = doc.key.split("/");
      // Also the snapshots of a volume whose copy a crash cut short (its record is gone by now).
      const orphan = !(await this.d.store.get(this.key(pool!, project!, name!)));
      if (!doc.value.phase && !orphan) continue;
      const p = await this.d.storage.pool(pool!).catch(() => undefined);
      if (p) await this.d.storage.driverOf(p).deleteSnapshot(this.ref(p, project!, name!), snap!).catch(() => {});
      await this.d.store.delete(doc.key);
    }
  }

  /** The snapshot names of an instance (its volume's snapshots), oldest first. */
  async instanceSnapshotNames(project: string, instance: string): Promise<string[]> {
    const docs = await this.d.store.list<{ name: string; created_at: string; phase?: string }>(`instance-snapshots/${project}/${instance}/`);
    return docs.map((d) => d.value).filter((s) => !s.phase || s.phase === "ready").sort((a, b) => (a.created_at < b.created_at ? -1 : 1)).map((s) => s.name);
  }

  // ---- snapshots ------------------------------------------------------------------------

  async snapshots(poolName: string, project: string, name: string): Promise<SnapshotRecord[]> {
    return (await this.d.store.list<SnapshotRecord>(this.snapPrefix(poolName, project, name))).map((d) => d.value).filter((s) => !s.phase);
  }

  snapshotView(s: SnapshotRecord): StorageVolumeSnapshot {
    return { name: s.name, description: s.description, config: s.config, content_type: "filesystem", created_at: s.created_at, expires_at: s.expires_at };
  }

  async snapshotRecord(poolName: string, project: string, name: string, snap: string): Promise<SnapshotRecord> {
    const doc = await this.d.store.get<SnapshotRecord>(this.snapKey(poolName, project, name, snap));
    if (!doc || doc.value.phase) throw notFound(`Snapshot "${snap}" of storage volume "${name}" not found`);
    return doc.value;
  }

  async createSnapshot(poolName: string, project: string, name: string, req: { name?: string; expires_at?: string }, signal?: AbortSignal): Promise<SnapshotRecord> {
    return this.locks.with(`${poolName}/${project}/${name}`, `Storage volume "${name}"`, LOCK_TIMEOUT_MS, async () => {
      const v = await this.record(poolName, project, name);
      const existing = new Set((await this.snapshots(poolName, project, name)).map((s) => s.name));
      let snap = req.name;
      if (!snap) for (let i = 0; existing.has((snap = `snap${i}`)); i++);
      checkVolumeName(snap, "snapshot");
      if (existing.has(snap!)) throw conflict(`Snapshot "${snap}" of storage volume "${name}" already exists`);
      const record: SnapshotRecord = { name: snap!, description: v.description ?? "", config: v.config ?? {}, created_at: new Date().toISOString(), expires_at: req.expires_at || NEVER, phase: "creating" };
      const key = this.snapKey(poolName, project, name, snap!);
      await this.d.store.put(key, record, { revision: 0 });
      const pool = await this.d.storage.pool(poolName);
      const driver = this.d.storage.driverOf(pool);
      try {
        await driver.createSnapshot(this.ref(pool, project, name), snap!, signal);
      } catch (e) {
        await driver.deleteSnapshot(this.ref(pool, project, name), snap!).catch(() => {});
        await this.d.store.delete(key);
        throw e;
      }
      const ready = { ...record };
      delete ready.phase;
      await this.d.store.put(key, ready);
      return ready;
    });
  }

  async updateSnapshot(poolName: string, project: string, name: string, snap: string, put: { description?: string; expires_at?: string }): Promise<void> {
    const s = await this.snapshotRecord(poolName, project, name, snap);
    await this.d.store.put(this.snapKey(poolName, project, name, snap), { ...s, description: put.description ?? s.description, expires_at: put.expires_at ?? s.expires_at });
  }

  async renameSnapshot(poolName: string, project: string, name: string, snap: string, newName: unknown): Promise<void> {
    const target = checkVolumeName(newName, "snapshot");
    await this.locks.with(`${poolName}/${project}/${name}`, `Storage volume "${name}"`, LOCK_TIMEOUT_MS, async () => {
      const s = await this.snapshotRecord(poolName, project, name, snap);
      if (await this.d.store.get(this.snapKey(poolName, project, name, target))) throw conflict(`Snapshot "${target}" already exists`);
      const pool = await this.d.storage.pool(poolName);
      await this.d.storage.driverOf(pool).renameSnapshot(this.ref(pool, project, name), snap, target);
      await this.d.store.txn((tx) => {
        tx.delete(this.snapKey(poolName, project, name, snap));
        tx.put(this.snapKey(poolName, project, name, target), { ...s, name: target });
      });
    });
  }

  async deleteSnapshot(poolName: string, project: string, name: string, snap: string): Promise<void> {
    await this.locks.with(`${poolName}/${project}/${name}`, `Storage volume "${name}"`, LOCK_TIMEOUT_MS, async () => {
      await this.snapshotRecord(poolName, project, name, snap);
      const pool = await this.d.storage.pool(poolName);
      await this.d.storage.driverOf(pool).deleteSnapshot(this.ref(pool, project, name), snap);
      await this.d.store.delete(this.snapKey(poolName, project, name, snap));
    });
  }
}
