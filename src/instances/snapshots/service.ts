import { lstat } from "node:fs/promises";
import { badRequest, conflict, notFound } from "../../api/errors.js";
import type { EventHub } from "../../core/events.js";
import type { Logger } from "../../core/logger.js";
import type { DocumentStore } from "../../state/store.js";
import type { Revert } from "../../core/revert.js";
import type { VolumeRef } from "../../storage/driver.js";
import type { StorageService } from "../../storage/service.js";
import type { InstanceEngines } from "../drivers/engines.js";
import { expandConfig } from "../expand.js";
import { hostName, instanceKey, instancePrefix, instanceUrl, type InstanceFields, type InstanceRecord } from "../record.js";
import { LOCK_TIMEOUT_MS, type InstanceService } from "../service.js";
import { onlyVolatile, stripVolatile } from "../config/record-fields.js";
import { expiryFrom, nextSnapshotName } from "./naming.js";
import {
  ALL_SNAPSHOTS,
  byCreation,
  expired,
  NO_EXPIRY,
  parseExpiresAt,
  readySnapshots,
  snapshotKey,
  snapshotOf,
  snapshotPrefix,
  snapshotRecord,
  snapshotUrl,
  validateSnapshotName,
  type SnapshotRecord,
} from "./record.js";

export interface SnapshotServiceDeps {
  store: DocumentStore;
  storage: StorageService;
  instances: InstanceService;
  driver: Pick<InstanceEngines, "status" | "freeze" | "unfreeze">;
  events: EventHub;
  log: Logger;
}

/** A snapshot as an imported backup describes it (backups/config.ts ParsedSnapshot). */
export interface ImportedSnapshot extends InstanceFields {
  name: string;
  created_at?: string;
  last_used_at?: string;
  expires_at: string;
}

export interface CreateSnapshot {
  name?: unknown;
  /** undefined: from snapshots.expiry; NO_EXPIRY: never. */
  expires_at?: unknown;
  /** Replace a snapshot of that name (lxc snapshot --reuse). */
  reuse?: boolean;
}

/**
 * Instance snapshots: their records (the instance's state when taken) beside the volume
 * snapshots the storage service makes. Every change takes the instance's lock; records go
 * through "creating"/"deleting" phases so a crash leaves each snapshot whole or absent
 * (recover()).
 */
export class SnapshotService {
  constructor(private readonly d: SnapshotServiceDeps) {}

  list(project: string, instance: string): Promise<SnapshotRecord[]> {
    return readySnapshots(this.d.store, project, instance);
  }

  /** Every ready snapshot of a project (or all), grouped by instance: one store read for a list. */
  async byInstance(project?: string): Promise<Map<string, SnapshotRecord[]>> {
    const docs = await this.d.store.list<SnapshotRecord>(project ? `${ALL_SNAPSHOTS}${project}/` : ALL_SNAPSHOTS);
    const out = new Map<string, SnapshotRecord[]>();
    for (const { value: s } of docs) {
      if (s.phase !== "ready") continue;
      const k = `${s.project}/${s.instance}`;
      out.set(k, [...(out.get(k) ?? []), s]);
    }
    for (const l of out.values()) l.sort(byCreation);
    return out;
  }

  async get(project: string, instance: string, name: string): Promise<SnapshotRecord> {
    const doc = await this.d.store.get<SnapshotRecord>(snapshotKey(project, instance, name));
    if (!doc || doc.value.phase !== "ready") throw notFound(`Snapshot "${name}" of instance "${instance}" not found`);
    return doc.value;
  }

  /** Checks a create request on the request itself (name, expiry) without changing anything. */
  async check(project: string, instance: string, req: CreateSnapshot): Promise<void> {
    await this.d.instances.record(project, instance);
    if (req.name !== undefined && req.name !== "") {
      const name = validateSnapshotName(req.name);
      if (!req.reuse && (await this.d.store.get(snapshotKey(project, instance, name)))) throw conflict(`Snapshot "${name}" already exists`);
    }
    if (req.expires_at !== undefined) parseExpiresAt(req.expires_at);
  }

  /**
   * Takes a snapshot of the instance's volume and records the instance's state with it. A
   * running instance is snapshotted live; where the pool's snapshots are copies (no instant
   * snapshots), it is frozen for the copy so the snapshot is consistent, as LXD does for dir.
   */
  async create(project: string, instance: string, req: CreateSnapshot, signal?: AbortSignal): Promise<SnapshotRecord> {
    return this.d.instances.locks.with(`${project}/${instance}`, `Instance "${instance}"`, LOCK_TIMEOUT_MS, async () => {
      const r = await this.d.instances.record(project, instance);
      const config = expandConfig(r, await this.d.instances.layers(r));
      const taken = (await this.d.store.list<SnapshotRecord>(snapshotPrefix(project, instance))).map((d) => d.value.name);
      const name = req.name !== undefined && req.name !== "" ? validateSnapshotName(req.name) : nextSnapshotName(config["snapshots.pattern"], taken);
      if (taken.includes(name)) {
        if (!req.reuse) throw conflict(`Snapshot "${name}" already exists`);
        await this.remove(await this.get(project, instance, name));
      }
      // null (what Go's client sends for "not given") takes the instance's snapshots.expiry.
      const expiresAt = req.expires_at !== undefined && req.expires_at !== null ? parseExpiresAt(req.expires_at) : (expiryFrom(config["snapshots.expiry"])?.toISOString() ?? NO_EXPIRY);
      const record = snapshotOf(r, name, expiresAt);
      const key = snapshotKey(project, instance, name);
      try {
        await this.d.store.put(key, record, { revision: 0 });
      } catch {
        throw conflict(`Snapshot "${name}" already exists`);
      }
      const ref = await this.d.storage.instanceVolume(r.pool, project, instance, r.type);
      try {
        await this.withFrozen(r, () => this.d.storage.snapshotInstanceVolume(ref, name, signal));
        record.phase = "ready";
        await this.d.store.put(key, record);
      } catch (e) {
        await this.d.storage.deleteVolumeSnapshot(ref, name).catch(() => {});
        await this.d.store.delete(key);
        throw e;
      }
      this.d.events.lifecycle("instance-snapshot-created", snapshotUrl(project, instance, name), {}, project);
      return record;
    });
  }

  /**
   * A snapshot of an imported backup, for an instance still being created (its record says
   * "creating", so nothing else reaches it and no lock is needed): the volume snapshot of what
   * the import put in the volume (unless the driver made it with the volume: `taken`), then its
   * record as the backup describes it. Each step registers its undo in the create's `undo`.
   */
  async addImported(
    ref: VolumeRef,
    instance: { project: string; name: string },
    s: ImportedSnapshot,
    undo: Revert,
    opts: { taken?: boolean; signal?: AbortSignal } = {},
  ): Promise<SnapshotRecord> {
    const name = validateSnapshotName(s.name);
    const record = snapshotRecord(
      instance,
      name,
      s,
      {
        created_at: s.created_at && !s.created_at.startsWith("0001-01-01") && !Number.isNaN(Date.parse(s.created_at)) ? s.created_at : new Date().toISOString(),
        last_used_at: s.last_used_at ?? NO_EXPIRY,
        expires_at: parseExpiresAt(s.expires_at),
      },
      "ready",
    );
    if (!opts.taken) {
      await this.d.storage.snapshotInstanceVolume(ref, name, opts.signal);
      undo.add(() => this.d.storage.deleteVolumeSnapshot(ref, name));
    }
    const key = snapshotKey(instance.project, instance.name, name);
    try {
      await this.d.store.put(key, record, { revision: 0 });
    } catch {
      throw conflict(`Snapshot "${name}" already exists`);
    }
    undo.add(() => this.d.store.delete(key));
    return record;
  }

  /** Runs `work` with the instance frozen if it runs and the pool copies rather than snapshots. */
  async withFrozen<T>(r: InstanceRecord, work: () => Promise<T>): Promise<T> {
    const host = hostName(r.project, r.name);
    const freeze = !(await this.d.storage.capabilities(r.pool)).instantSnapshots && (await this.d.driver.status(host)).status === "Running";
    if (!freeze) return work();
    await this.d.driver.freeze(host);
    try {
      return await work();
    } finally {
      await this.d.driver.unfreeze(host).catch((e: Error) => this.d.log.error("could not unfreeze after a snapshot", { instance: r.name, err: e.message }));
    }
  }

  /** PUT/PATCH: only expires_at is writable. */
  async update(project: string, instance: string, name: string, body: { expires_at?: unknown }): Promise<SnapshotRecord> {
    const expiresAt = parseExpiresAt(body.expires_at);
    return this.d.instances.locks.with(`${project}/${instance}`, `Instance "${instance}"`, LOCK_TIMEOUT_MS, async () => {
      const s = { ...(await this.get(project, instance, name)), expires_at: expiresAt };
      await this.d.store.put(snapshotKey(project, instance, name), s);
      this.d.events.lifecycle("instance-snapshot-updated", snapshotUrl(project, instance, name), {}, project);
      return s;
    });
  }

  async rename(project: string, instance: string, name: string, newName: unknown): Promise<SnapshotRecord> {
    const target = validateSnapshotName(newName);
    return this.d.instances.locks.with(`${project}/${instance}`, `Instance "${instance}"`, LOCK_TIMEOUT_MS, async () => {
      const s = await this.get(project, instance, name);
      const r = await this.d.instances.record(project, instance);
      // The record moves first, marked, so a crash before the data follows is finished at start.
      const renamed: SnapshotRecord = { ...s, name: target, renamed_from: name };
      await this.d.store.txn(async (tx) => {
        if (await tx.get(snapshotKey(project, instance, target))) throw conflict(`Snapshot "${target}" already exists`);
        tx.delete(snapshotKey(project, instance, name));
        tx.put(snapshotKey(project, instance, target), renamed);
      });
      try {
        await this.d.storage.renameVolumeSnapshot(await this.d.storage.instanceVolume(r.pool, project, instance, r.type), name, target);
      } catch (e) {
        await this.d.store.txn((tx) => {
          tx.delete(snapshotKey(project, instance, target));
          tx.put(snapshotKey(project, instance, name), s);
        });
        throw e;
      }
      delete renamed.renamed_from;
      await this.d.store.put(snapshotKey(project, instance, target), renamed);
      this.d.events.lifecycle("instance-snapshot-renamed", snapshotUrl(project, instance, target), { old_name: name }, project);
      return renamed;
    });
  }

  async delete(project: string, instance: string, name: string): Promise<void> {
    await this.d.instances.locks.with(`${project}/${instance}`, `Instance "${instance}"`, LOCK_TIMEOUT_MS, async () => {
      await this.remove(await this.get(project, instance, name));
    });
    this.d.events.lifecycle("instance-snapshot-deleted", snapshotUrl(project, instance, name), {}, project);
  }

  /** Removes a snapshot (caller holds the instance's lock): marked "deleting", data, record. */
  private async remove(s: SnapshotRecord): Promise<void> {
    const key = snapshotKey(s.project, s.instance, s.name);
    await this.d.store.put(key, { ...s, phase: "deleting" });
    const r = await this.d.instances.record(s.project, s.instance);
    await this.d.storage.deleteVolumeSnapshot(await this.d.storage.instanceVolume(r.pool, s.project, s.instance, r.type), s.name);
    await this.d.store.delete(key);
  }

  /**
   * Puts the (stopped) instance back as the snapshot has it: its volume, and its config,
   * devices, profiles and ephemeral flag. The instance keeps its own volatile keys (id map
   * allocation, MACs), except how its rootfs is owned on disk, which is the snapshot's.
   */
  async restore(project: string, instance: string, name: string, signal?: AbortSignal): Promise<void> {
    name = ownSnapshotName(instance, name);
    await this.d.instances.locks.with(`${project}/${instance}`, `Instance "${instance}"`, LOCK_TIMEOUT_MS, async () => {
      const r = await this.d.instances.record(project, instance);
      const s = await this.get(project, instance, name);
      if ((await this.d.driver.status(hostName(project, instance))).status !== "Stopped")
        throw badRequest(`Instance "${instance}" must be stopped to be restored`);
      await this.d.instances.layers({ ...r, profiles: s.profiles }).catch((e: Error) => {
        throw badRequest(`Snapshot "${name}" cannot be restored: ${e.message}`);
      });
      // Marked first: a restore a crash interrupts is done again, whole, at the next start.
      await this.d.store.put(instanceKey(project, instance), { ...r, restoring: name });
      await this.finishRestore(r, s, signal);
    });
    this.d.events.lifecycle("instance-restored", instanceUrl(project, instance), { snapshot: name }, project);
  }

  /** The volume back to the snapshot, then the record (its config, devices, profiles, …). */
  private async finishRestore(r: InstanceRecord, s: SnapshotRecord, signal?: AbortSignal): Promise<void> {
    const key = instanceKey(r.project, r.name);
    try {
      await this.d.storage.restoreVolumeSnapshot(await this.d.storage.instanceVolume(r.pool, r.project, r.name, r.type), s.name, signal);
    } catch (e) {
      // Nothing was swapped: the driver puts the new tree in only once it is whole.
      const back = { ...r };
      delete back.restoring;
      await this.d.store.put(key, back);
      throw e;
    }
    const volatile = onlyVolatile(r.config);
    const disk = s.config["volatile.last_state.idmap"];
    if (disk !== undefined) volatile["volatile.last_state.idmap"] = disk;
    const restored: InstanceRecord = {
      ...r,
      architecture: s.architecture,
      config: { ...stripVolatile(s.config), ...volatile },
      devices: structuredClone(s.devices),
      profiles: [...s.profiles],
      ephemeral: s.ephemeral,
    };
    delete restored.restoring;
    await this.d.store.put(key, restored);
  }

  /** Deletes every snapshot whose expires_at has passed; returns their "instance/snapshot" names. */
  async pruneExpired(now = new Date()): Promise<string[]> {
    const pruned: string[] = [];
    for (const { value: s } of await this.d.store.list<SnapshotRecord>(ALL_SNAPSHOTS)) {
      if (s.phase !== "ready" || !expired(s, now)) continue;
      try {
        await this.delete(s.project, s.instance, s.name);
        pruned.push(`${s.instance}/${s.name}`);
      } catch (e) {
        this.d.log.error("could not delete an expired snapshot", { project: s.project, instance: s.instance, snapshot: s.name, err: (e as Error).message });
      }
    }
    return pruned;
  }

  /**
   * At start-up, after instances recovered: removes snapshots whose creation or deletion a
   * crash interrupted, and records left of instances that are gone.
   */
  async recover(): Promise<string[]> {
    const removed: string[] = [];
    for (const { value: r } of await this.d.store.list<InstanceRecord>(instancePrefix())) {
      if (r.phase !== "ready" || !r.restoring) continue;
      const s = await this.d.store.get<SnapshotRecord>(snapshotKey(r.project, r.name, r.restoring));
      this.d.log.warn("finishing a restore that was interrupted", { project: r.project, instance: r.name, snapshot: r.restoring });
      if (s) await this.finishRestore(r, s.value).catch((e: Error) => this.d.log.error("could not finish a restore", { instance: r.name, err: e.message }));
    }
    for (const doc of await this.d.store.list<SnapshotRecord>(ALL_SNAPSHOTS)) {
      const s = doc.value;
      const inst = await this.d.store.get<InstanceRecord>(instanceKey(s.project, s.instance));
      if (s.phase === "ready" && inst && s.renamed_from !== undefined) {
        const ref = await this.d.storage.instanceVolume(inst.value.pool, s.project, s.instance, inst.value.type);
        if (!(await exists(this.d.storage.snapshotPath(ref, s.name)))) await this.d.storage.renameVolumeSnapshot(ref, s.renamed_from, s.name);
        const done = { ...s };
        delete done.renamed_from;
        await this.d.store.put(doc.key, done);
        this.d.log.warn("finished a snapshot rename that was interrupted", { project: s.project, instance: s.instance, snapshot: s.name });
        continue;
      }
      if (s.phase === "ready" && inst) continue;
      if (inst && inst.value.phase === "ready") {
        const ref = await this.d.storage.instanceVolume(inst.value.pool, s.project, s.instance, inst.value.type);
        await this.d.storage.deleteVolumeSnapshot(ref, s.name).catch(() => {});
      }
      await this.d.store.delete(doc.key);
      removed.push(`${s.instance}/${s.name}`);
      this.d.log.warn("removed a snapshot whose creation or deletion was interrupted", { project: s.project, instance: s.instance, snapshot: s.name });
    }
    return removed;
  }
}

/** A snapshot named as "<instance>/<snapshot>" (LXD's restore field takes both forms). */
export function ownSnapshotName(instance: string, name: string): string {
  const i = name.indexOf("/");
  if (i < 0) return name;
  if (name.slice(0, i) !== instance) throw badRequest(`Snapshot "${name}" is not a snapshot of instance "${instance}"`);
  return name.slice(i + 1);
}

async function exists(path: string): Promise<boolean> {
  return !!(await lstat(path).catch(() => undefined));
}
