import { randomUUID } from "node:crypto";
import { badRequest, conflict } from "../api/errors.js";
import type { InstancesPost } from "../api/instance.js";
import type { EventHub } from "../core/events.js";
import { Revert } from "../core/revert.js";
import type { ProfileStore } from "../profiles/store.js";
import type { DocumentStore } from "../state/store.js";
import type { StorageService } from "../storage/service.js";
import { validateDevices } from "./config/devices.js";
import { validateInstanceConfig } from "./config/keys.js";
import { validateInstanceName } from "./config/name.js";
import { profileList, stripVolatile } from "./config/record-fields.js";
import { addSnapshots, copyWithSnapshots, syncTree } from "./copy-volume.js";
import { withNicVolatile } from "./devices/nic.js";
import { checkDeviceSources } from "./devices/sources.js";
import type { InstanceEngines } from "./drivers/engines.js";
import { checkDevicesApplied, expandDevices, rootDisk } from "./expand.js";
import { checkExpansion, noRootDevice } from "./expansion.js";
import { checkNicParents, type ManagedNetworks } from "./nic-parents.js";
import { hostName, instanceKey, instanceUrl, NEVER, type InstanceRecord } from "./record.js";
import { LOCK_TIMEOUT_MS, type InstanceService } from "./service.js";
import { readySnapshots, snapshotKey, type SnapshotRecord } from "./snapshots/record.js";
import { ownSnapshotName, type SnapshotService } from "./snapshots/service.js";
import type { ContainerSpecs } from "./spec.js";

export interface CopyDeps {
  store: DocumentStore;
  storage: StorageService;
  instances: InstanceService;
  snapshots: SnapshotService;
  driver: InstanceEngines;
  specs: ContainerSpecs;
  profiles: ProfileStore;
  events: EventHub;
  networks?: ManagedNetworks;
}

/** A checked copy request. */
export interface PreparedCopy {
  record: InstanceRecord;
  source: InstanceRecord;
  /** Copy from this snapshot of the source (its state then, and no snapshots). */
  fromSnapshot?: string;
  /** Carry the source's snapshots (not with instance_only or from a snapshot). */
  withSnapshots: boolean;
  refresh: boolean;
}

/** The volatile keys a copy keeps from its source: its image, and how its rootfs is owned on disk. */
const KEPT_VOLATILE = ["volatile.base_image", "volatile.last_state.idmap"];

/**
 * Copies of instances within this host, as LXD's `source: {type: "copy"}`: a new record with
 * new volatile keys (uuid, MACs, id map), an independent volume (and snapshots unless
 * instance_only), made crash-safe by the record's "creating" phase. `refresh` brings an
 * existing copy in line instead: missing snapshots added, extra ones removed, the volume synced.
 */
export class InstanceCopier {
  constructor(private readonly d: CopyDeps) {}

  /** Checks a copy request on the request itself; nothing changes. */
  async prepare(project: string, req: InstancesPost): Promise<PreparedCopy> {
    const src = req.source;
    if (typeof src.source !== "string" || !src.source) throw badRequest('A copy needs "source": the instance (or instance/snapshot) to copy');
    if (src.project && src.project !== project) throw badRequest("Copies between projects are not supported yet");
    // `live` (the client sets it for a running source) means nothing within one host: the live
    // filesystem is copied, as LXD does; a copy of runtime state (CRIU) is another matter.
    if (req.stateful) throw badRequest("Stateful copies are not supported: Lodge has no CRIU checkpointing");
    const [srcName, snapPart] = src.source.split("/", 2) as [string, string | undefined];
    const source = await this.d.instances.record(project, srcName);
    const fromSnapshot = snapPart !== undefined ? ownSnapshotName(srcName, src.source) : undefined;
    const snap = fromSnapshot ? await this.d.snapshots.get(project, srcName, fromSnapshot) : undefined;
    const name = validateInstanceName(req.name);
    const refresh = !!src.refresh;
    const existing = await this.d.store.get<InstanceRecord>(instanceKey(project, name));
    if (existing && !refresh) throw conflict(`Instance "${name}" already exists`);
    if (name === srcName) throw badRequest("An instance cannot be copied onto itself");
    const state = snap ?? source;

    // LXD's merge: the request's keys win, the source's (non-volatile) fill in.
    const asked = validateInstanceConfig(req.config ?? {});
    for (const k of Object.keys(asked)) if (k.startsWith("volatile.") && !KEPT_VOLATILE.includes(k)) delete asked[k];
    const config: Record<string, string> = { ...stripVolatile(state.config), ...stripVolatile(asked) };
    for (const k of KEPT_VOLATILE) if (state.config[k] !== undefined) config[k] = state.config[k]!;
    const devices = validateDevices({ ...state.devices, ...(req.devices ?? {}) });
    checkDevicesApplied(devices);
    await checkNicParents(devices, {}, { networks: this.d.networks, project, instance: name });
    await checkDeviceSources(devices);
    const profiles = req.profiles === undefined || req.profiles === null ? [...state.profiles] : profileList(req.profiles);
    const layers = await this.d.profiles.resolve(project, profiles);
    if (!rootDisk(expandDevices({ devices }, layers))) {
      // Without the profiles that gave it one (--no-profiles), the copy keeps the source's root disk.
      const srcDevices = expandDevices(state, await this.d.profiles.resolve(project, state.profiles));
      const srcRoot = rootDisk(srcDevices);
      if (srcRoot) devices[srcRoot.name] = { ...srcDevices[srcRoot.name]! };
    }
    const root = rootDisk(expandDevices({ devices }, layers));
    if (!root) throw noRootDevice(name);
    await this.d.storage.pool(root.pool);
    const record: InstanceRecord = {
      name,
      project,
      type: source.type,
      architecture: state.architecture,
      description: req.description ?? source.description,
      config,
      devices,
      profiles,
      ephemeral: req.ephemeral ?? state.ephemeral,
      stateful: false,
      created_at: "",
      last_used_at: NEVER,
      pool: root.pool,
      phase: "creating",
    };
    checkExpansion({ before: record, beforeLayers: layers, after: record, afterLayers: layers, running: false });
    await this.d.instances.roots.check(expandDevices(record, layers), record.type);
    return { record, source, fromSnapshot, withSnapshots: !fromSnapshot && !(src.instance_only || src.container_only), refresh: refresh && !!existing };
  }

  /** Makes the copy (or refreshes it); the new instance is left stopped. */
  async copy(p: PreparedCopy, signal?: AbortSignal): Promise<InstanceRecord> {
    if (p.refresh) return this.refresh(p, signal);
    const { store, storage } = this.d;
    const record: InstanceRecord = { ...p.record, config: { ...p.record.config }, created_at: new Date().toISOString() };
    const { project, name, pool } = record;
    const src = p.source;
    const undo = new Revert();
    try {
      try {
        await store.put(instanceKey(project, name), record, { revision: 0 });
      } catch {
        throw conflict(`Instance "${name}" already exists`);
      }
      undo.add(() => store.delete(instanceKey(project, name)));
      const from = await storage.instanceVolume(src.pool, project, src.name, src.type);
      const fromPath = await storage.instancePath(src.pool, project, src.name, src.type);
      const snaps = p.withSnapshots ? await readySnapshots(store, project, src.name) : [];
      const bySnap = new Map(snaps.map((s) => [s.name, s]));
      const create = async (fromSnapshot?: string) => {
        const v = await storage.copyInstanceVolume({ from, fromSnapshot, toPool: pool, project, name, type: src.type, signal });
        undo.add(() => storage.deleteInstanceVolume(pool, project, name, src.type));
        return v;
      };
      const volume = p.fromSnapshot
        ? await create(p.fromSnapshot)
        : await copyWithSnapshots({
            storage,
            from,
            fromPath,
            snapshots: snaps.map((s) => s.name),
            create,
            live: (work) => this.d.snapshots.withFrozen(src, work),
            snapshotted: (s) => this.writeSnapshotRecord(bySnap.get(s)!, name),
            signal,
          });
      undo.add(() => this.deleteSnapshotRecords(project, name));

      const layers = await this.d.profiles.resolve(project, record.profiles);
      await this.d.instances.roots.apply(record, layers);
      const fresh = await this.d.instances.volatileAtCreate(record, record.config["volatile.base_image"]);
      for (const k of KEPT_VOLATILE) delete fresh[k];
      if (fresh["volatile.apply_template"]) fresh["volatile.apply_template"] = "copy";
      record.config = withNicVolatile({ ...record.config, ...fresh }, expandDevices(record, layers), { running: false });
      await this.d.driver.create(await this.d.specs.build(record, volume.path));
      undo.add(() => this.d.driver.delete(hostName(project, name), { force: true }));

      await this.d.profiles.withLocks(project, record.profiles, async () => {
        const now = await this.d.profiles.resolve(project, record.profiles);
        checkExpansion({ before: record, beforeLayers: now, after: record, afterLayers: now, running: false });
        record.phase = "ready";
        await store.put(instanceKey(project, name), record);
      });
      undo.commit();
    } finally {
      await undo.run();
    }
    this.d.events.lifecycle("instance-created", instanceUrl(project, name), {}, project);
    return record;
  }

  /** A snapshot record of the copy: the source snapshot's, with a new uuid as the copy has. */
  private async writeSnapshotRecord(s: SnapshotRecord, instance: string): Promise<void> {
    const config = Object.fromEntries(Object.entries(s.config).filter(([k]) => !/^volatile\.(uuid|idmap\.|[^.]+\.(hwaddr|host_name)$)/.test(k) || KEPT_VOLATILE.includes(k)));
    config["volatile.uuid"] = randomUUID();
    const copy: SnapshotRecord = { ...s, instance, config, phase: "ready" };
    await this.d.store.put(snapshotKey(s.project, instance, s.name), copy);
  }

  private async deleteSnapshotRecords(project: string, instance: string): Promise<void> {
    for (const s of await readySnapshots(this.d.store, project, instance)) await this.d.store.delete(snapshotKey(project, instance, s.name));
  }

  /**
   * `lxc copy --refresh` onto an existing (stopped) instance: its snapshots missing from the
   * source are removed, the source's it lacks are added, and its volume is synced with the
   * source's. Its own config and volatile keys stay.
   */
  private async refresh(p: PreparedCopy, signal?: AbortSignal): Promise<InstanceRecord> {
    const { project, name } = p.record;
    const src = p.source;
    const { store, storage } = this.d;
    return this.d.instances.locks.with(`${project}/${name}`, `Instance "${name}"`, LOCK_TIMEOUT_MS, async () => {
      const target = await this.d.instances.record(project, name);
      if ((await this.d.driver.status(hostName(project, name))).status !== "Stopped")
        throw badRequest(`Instance "${name}" must be stopped to be refreshed`);
      const from = await storage.instanceVolume(src.pool, project, src.name, src.type);
      const to = await storage.instanceVolume(target.pool, project, name, target.type);
      const toPath = await storage.instancePath(target.pool, project, name, target.type);
      const theirs = p.withSnapshots ? await readySnapshots(store, project, src.name) : [];
      const ours = await readySnapshots(store, project, name);
      const keep = new Set(theirs.map((s) => s.name));
      for (const s of ours.filter((s) => !keep.has(s.name))) {
        await store.put(snapshotKey(project, name, s.name), { ...s, phase: "deleting" });
        await storage.deleteVolumeSnapshot(to, s.name);
        await store.delete(snapshotKey(project, name, s.name));
      }
      const have = new Set(ours.map((s) => s.name));
      const missing = theirs.filter((s) => !have.has(s.name));
      const bySnap = new Map(missing.map((s) => [s.name, s]));
      await addSnapshots({ storage, from, to, toPath, snapshots: missing.map((s) => s.name), snapshotted: (s) => this.writeSnapshotRecord(bySnap.get(s)!, name), signal });
      const fromPath = p.fromSnapshot ? storage.snapshotPath(from, p.fromSnapshot) : await storage.instancePath(src.pool, project, src.name, src.type);
      await this.d.snapshots.withFrozen(src, () => syncTree(fromPath, toPath, signal));
      // The tree is now owned on disk as the source's is.
      const disk = (p.fromSnapshot ? (await this.d.snapshots.get(project, src.name, p.fromSnapshot)).config : src.config)["volatile.last_state.idmap"];
      const updated = { ...target, config: { ...target.config } };
      if (disk !== undefined) updated.config["volatile.last_state.idmap"] = disk;
      await store.put(instanceKey(project, name), updated);
      this.d.events.lifecycle("instance-updated", instanceUrl(project, name), {}, project);
      return updated;
    });
  }
}
