import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { badRequest, conflict, notFound, preconditionFailed } from "../api/errors.js";
import { etagOf } from "../api/etag.js";
import type { InstancePut, InstancesPost } from "../api/instance.js";
import type { EventHub } from "../core/events.js";
import type { Logger } from "../core/logger.js";
import { Revert } from "../core/revert.js";
import type { VolumeRef } from "../storage/driver.js";
import type { ImageStore } from "../images/store.js";
import type { DocumentStore } from "../state/store.js";
import type { StorageService } from "../storage/service.js";
import { idmapFromJson, idmapToJson, readHostPool, type HostIdPool } from "../sys/idmap.js";
import { validateDevices } from "./config/devices.js";
import { validateInstanceConfig } from "./config/keys.js";
import { validateInstanceName } from "./config/name.js";
import { imageConfig, onlyVolatile, profileList, stripVolatile } from "./config/record-fields.js";
import type { InstanceEngines } from "./drivers/engines.js";
import { checkDevicesApplied, expandConfig, expandDevices, rootDisk } from "./expand.js";
import { RootDisks } from "./root-disk.js";
import { prepareCreate } from "./create-request.js";
import { renameInstance } from "./rename.js";
import { volatileAtCreate } from "./volatile-create.js";
import { checkExpansion, noRootDevice } from "./expansion.js";
import type { ProfileLayer } from "../profiles/record.js";
import { layersOf, type ProfileStore } from "../profiles/store.js";
import { KeyedLock } from "./locks.js";
import { checkDeviceSources } from "./devices/sources.js";
import { checkNicParents, type ManagedNetworks } from "./nic-parents.js";
import { checkVolumeDisks, type ManagedVolumes } from "./devices/volumes.js";
import { withNicVolatile } from "./devices/nic.js";
import { hostName, instanceKey, instancePrefix, instanceUrl, NEVER, type InstanceRecord } from "./record.js";
import { ContainerSpecs } from "./spec.js";
import { snapshotPrefix } from "./snapshots/record.js";
import { pullInstanceImage, type PullContext, type RemoteImageRef } from "./image-source.js";

export interface InstanceServiceDeps {
  store: DocumentStore;
  storage: StorageService;
  images: ImageStore;
  driver: InstanceEngines;
  events: EventHub;
  log: Logger;
  specs: ContainerSpecs;
  profiles: ProfileStore;
  /** Root of per-instance log directories (exec output). */
  logsDir: string;
  /** Managed networks, for NICs that name one (checked on create and change). */
  networks?: ManagedNetworks;
  /** Custom storage volumes, for disks that attach one. */
  volumes?: ManagedVolumes;
}

/** Applies an update to the running instance; returns its undo (lifecycle.applyLive). */
export type LiveApply = (before: InstanceRecord, after: InstanceRecord, layers?: LiveLayers) => Promise<(() => Promise<void>) | undefined>;

/** The instance's profiles before and after a change, when they are not (yet) as stored. */
export interface LiveLayers {
  before: readonly ProfileLayer[];
  after: readonly ProfileLayer[];
}

/** A checked create request: the record to write and the image to fill it from. */
export interface PreparedCreate {
  record: InstanceRecord;
  image?: string;
  /** An image on another server, pulled by create() (then `image`, architecture and image.* keys follow). */
  remote?: RemoteImageRef;
}

/** How long an instance operation waits for another one on the same instance. */
export const LOCK_TIMEOUT_MS = 60_000;

/**
 * Instances: records, creation from images, config updates, rename and delete. Every
 * multi-step change undoes itself on failure, and creation is made crash-safe by the record's
 * phase (see InstanceRecord). Lifecycle (start/stop/…) lives in lifecycle.ts.
 */
export class InstanceService {
  readonly locks = new KeyedLock();
  private pool?: Promise<HostIdPool>;

  constructor(private readonly d: InstanceServiceDeps) {
    this.roots = new RootDisks(d.storage);
  }

  private hostPool(): Promise<HostIdPool> {
    return (this.pool ??= readHostPool());
  }

  async record(project: string, name: string): Promise<InstanceRecord> {
    const doc = await this.d.store.get<InstanceRecord>(instanceKey(project, name));
    if (!doc || doc.value.phase !== "ready") throw notFound(`Instance "${name}" not found`);
    return doc.value;
  }

  /** All ready instances of a project (or every project): one store read. */
  async records(project?: string): Promise<InstanceRecord[]> {
    return (await this.d.store.list<InstanceRecord>(instancePrefix(project))).map((d) => d.value).filter((r) => r.phase === "ready");
  }

  etag(r: InstanceRecord): string {
    return etagOf({
      architecture: r.architecture,
      config: r.config,
      devices: r.devices,
      ephemeral: r.ephemeral,
      profiles: r.profiles,
      stateful: r.stateful,
      description: r.description,
    });
  }

  /**
   * Checks a create request and resolves its image without changing anything, so bad input
   * is refused on the request itself (400/404) before any operation starts (create-request.ts).
   */
  prepare(project: string, req: InstancesPost): Promise<PreparedCreate> {
    return prepareCreate({ ...this.d, roots: this.roots }, project, req);
  }

  /** Creates a prepared instance from its image (or empty); it is left stopped. */
  async create(prepared: PreparedCreate, signal?: AbortSignal, op?: PullContext): Promise<InstanceRecord> {
    const record: InstanceRecord = { ...prepared.record, config: { ...prepared.record.config }, created_at: new Date().toISOString() };
    const { project, name, pool } = record;
    let image = prepared.image;
    const undo = new Revert();
    try {
      try {
        await this.d.store.put(instanceKey(project, name), record, { revision: 0 });
      } catch {
        throw conflict(`Instance "${name}" already exists`);
      }
      undo.add(() => this.d.store.delete(instanceKey(project, name)));

      if (prepared.remote) {
        // The name is taken (above) while the image comes; the record is not visible until ready.
        const pulled = await pullInstanceImage(this.d.images, project, prepared.remote, op);
        image = pulled.fingerprint;
        record.architecture = pulled.architecture;
        record.config = { ...imageConfig(pulled), ...record.config };
      }

      // The id map first: a layered volume is stored shifted to it (then last_state.idmap says so).
      const volatile = await this.volatileAtCreate(record, image);
      const idmap = volatile["volatile.idmap.next"] ? idmapFromJson(volatile["volatile.idmap.next"]) : undefined;
      const volume = await this.d.storage.createInstanceVolume(pool, project, name, record.type, image, signal, idmap);
      undo.add(() => this.d.storage.deleteInstanceVolume(pool, project, name, record.type));
      if (volume.ownedAs) volatile["volatile.last_state.idmap"] = idmapToJson(volume.ownedAs);

      const layers = await this.d.profiles.resolve(project, record.profiles);
      await this.roots.apply(record, layers);
      record.config = withNicVolatile({ ...record.config, ...volatile }, expandDevices(record, layers), { running: false });
      await this.makeReady(record, volume.path, undo);
      undo.commit();
    } finally {
      await undo.run();
    }
    if (image) await this.d.images.markUsed(project, image).catch(() => {});
    this.d.events.lifecycle("instance-created", instanceUrl(project, name), {}, project);
    return record;
  }

  /**
   * Creates an instance whose volume is filled by `fill` (an imported backup) rather than from
   * an image, or made whole by `makeVolume` (a driver's own backup stream): the record is
   * checked as a create request would be, written "creating" first, and everything (record,
   * volume, liblxc config, and what `fill` registers in `undo`) is undone if any step fails. The id map is
   * allocated here; `onDisk` is how the filled tree is owned (the backup's
   * volatile.last_state.idmap), so the first start shifts it as needed.
   */
  async createFilled(
    req: { project: string; name: string; pool?: string; architecture: string; description: string; config: Record<string, string>; devices: Record<string, Record<string, string>>; profiles: string[]; ephemeral: boolean; keepVolatile: Record<string, string> },
    fill: (volume: { path: string; ref: VolumeRef }, undo: Revert) => Promise<void>,
    signal?: AbortSignal,
    makeVolume?: (pool: string) => Promise<{ path: string; ref: VolumeRef }>,
  ): Promise<InstanceRecord> {
    const { project } = req;
    const name = validateInstanceName(req.name);
    const config = validateInstanceConfig(stripVolatile(req.config));
    const devices = validateDevices(req.devices);
    checkDevicesApplied(devices);
    await checkNicParents(devices, {}, { networks: this.d.networks, project, instance: name });
    await checkDeviceSources(devices);
    const profiles = profileList(req.profiles);
    const layers = await this.d.profiles.resolve(project, profiles);
    let root = rootDisk(expandDevices({ devices }, layers));
    if (!root) throw noRootDevice(name);
    if (req.pool && req.pool !== root.pool) {
      // The target pool wins (X-LXD-pool): on the instance's own root disk, or one added over the profile's.
      devices[root.name] = { ...(devices[root.name] ?? { type: "disk", path: "/" }), pool: req.pool };
      root = rootDisk(expandDevices({ devices }, layers))!;
    }
    await this.d.storage.pool(root.pool);
    if (await this.d.store.get(instanceKey(project, name))) throw conflict(`Instance "${name}" already exists`);
    const record: InstanceRecord = {
      name,
      project,
      type: "container",
      architecture: req.architecture,
      description: req.description,
      config,
      devices,
      profiles,
      ephemeral: req.ephemeral,
      stateful: false,
      created_at: new Date().toISOString(),
      last_used_at: NEVER,
      pool: root.pool,
      phase: "creating",
    };
    checkExpansion({ before: record, beforeLayers: layers, after: record, afterLayers: layers, running: false });
    await this.roots.check(expandDevices(record, layers), record.type);
    const undo = new Revert();
    try {
      try {
        await this.d.store.put(instanceKey(project, name), record, { revision: 0 });
      } catch {
        throw conflict(`Instance "${name}" already exists`);
      }
      undo.add(() => this.d.store.delete(instanceKey(project, name)));
      const volume = makeVolume ? await makeVolume(record.pool) : await this.d.storage.createInstanceVolume(record.pool, project, name, record.type, undefined, signal);
      undo.add(() => this.d.storage.deleteInstanceVolume(record.pool, project, name, record.type));
      await fill(volume, undo);
      await this.roots.apply(record, layers);
      record.config = withNicVolatile({ ...record.config, ...(await this.volatileAtCreate(record)), ...req.keepVolatile }, expandDevices(record, layers), { running: false });
      await this.makeReady(record, volume.path, undo);
      undo.commit();
    } finally {
      await undo.run();
    }
    this.d.events.lifecycle("instance-created", instanceUrl(project, name), {}, project);
    return record;
  }

  /**
   * The last steps of every create: the engine's artefacts, then the record made ready under its
   * profiles' locks, checked against them as they are now: a profile changed or deleted since
   * the request was checked (a creating instance is no profile's user yet) fails the create
   * rather than leaving an instance its profiles do not fit.
   */
  private async makeReady(record: InstanceRecord, volumePath: string, undo: Revert): Promise<void> {
    const { project, name } = record;
    await this.d.driver.create(await this.d.specs.build(record, volumePath));
    undo.add(() => this.d.driver.delete(hostName(project, name), { force: true }));
    await this.d.profiles.withLocks(project, record.profiles, async () => {
      const now = await this.d.profiles.resolve(project, record.profiles);
      checkExpansion({ before: record, beforeLayers: now, after: record, afterLayers: now, running: false });
      record.phase = "ready";
      await this.d.store.put(instanceKey(project, name), record);
    });
  }

  /** volatile.* keys LXD sets at creation (and on a copy): the id map, the image, templates to apply. */
  async volatileAtCreate(r: InstanceRecord, fingerprint?: string): Promise<Record<string, string>> {
    return volatileAtCreate(r, {
      capabilities: this.d.driver.capabilitiesOf(r.type),
      records: () => this.records(),
      hostPool: () => this.hostPool(),
      fingerprint,
    });
  }

  /**
   * PUT (replace) or PATCH (merge) of the writable fields. volatile.* keys survive as they
   * are. `live` applies the change to the instance if it runs (lifecycle.applyLive: devices
   * hot-plugged, limits), under the instance's lock and before the record is stored, so the
   * record always says what runs: a change that cannot be applied is refused, nothing stored.
   */
  async update(
    project: string,
    name: string,
    put: Partial<InstancePut>,
    mode: "put" | "patch",
    ifMatch?: string,
    live?: LiveApply,
  ): Promise<{ before: InstanceRecord; after: InstanceRecord }> {
    // Profiles named by the change are locked first (profile locks before instance locks, as a
    // profile change takes them), so none of them changes between its check and its use here.
    const named = put.profiles === undefined ? [] : profileList(put.profiles);
    return this.d.profiles.withLocks(project, named, () => this.locks.with(`${project}/${name}`, `Instance "${name}"`, LOCK_TIMEOUT_MS, async () => {
      const before = await this.record(project, name);
      if (ifMatch && ifMatch !== this.etag(before)) throw preconditionFailed(`Instance "${name}" changed since it was read (ETag mismatch)`);
      const userConfig = mode === "put" ? (put.config ?? {}) : { ...stripVolatile(before.config), ...(put.config ?? {}) };
      // A PUT echoes a whole config back, and `lxc copy --refresh` echoes the source's, volatile
      // keys and all (LXD stores them): they are the instance's own bookkeeping, kept as they
      // are. A PATCH names keys on purpose, so a volatile one there is refused.
      if (mode === "patch")
        for (const k of Object.keys(put.config ?? {})) if (k.startsWith("volatile.") && userConfig[k] !== before.config[k]) throw badRequest(`"${k}" is set by lodged, not by requests`);
      const config = validateInstanceConfig(stripVolatile(userConfig));
      for (const [k, v] of Object.entries(config)) if (v === "" && mode === "patch") delete config[k];
      const devices = validateDevices(mode === "put" ? (put.devices ?? {}) : { ...before.devices, ...(put.devices ?? {}) });
      checkDevicesApplied(devices);
      await checkNicParents(devices, before.devices, { networks: this.d.networks, project, instance: name });
      await checkVolumeDisks(devices, before.devices, this.d.volumes, project);
      await checkDeviceSources(devices, before.devices);
      const profiles = put.profiles === undefined ? before.profiles : named;
      const [beforeLayers, afterLayers] = await Promise.all([this.d.profiles.resolve(project, before.profiles), this.d.profiles.resolve(project, profiles)]);
      const proposed: InstanceRecord = {
        ...before,
        config: { ...config, ...onlyVolatile(before.config) },
        devices,
        profiles,
        description: put.description ?? before.description,
        ephemeral: put.ephemeral ?? before.ephemeral,
      };
      const running = (await this.d.driver.status(hostName(project, name))).status !== "Stopped";
      const after = checkExpansion({ before, beforeLayers, after: proposed, afterLayers, running });
      await this.roots.check(expandDevices(after, afterLayers), after.type);
      // What runs changes first; if it cannot, nothing is stored. If the store fails, it is undone.
      const undoSize = await this.roots.change(before, expandDevices(before, beforeLayers), expandDevices(after, afterLayers));
      let undoLive: (() => Promise<void>) | undefined;
      try {
        undoLive = await live?.(before, after, { before: beforeLayers, after: afterLayers });
        await this.d.store.put(instanceKey(project, name), after);
      } catch (e) {
        await undoLive?.().catch((err: Error) => this.d.log.error("could not undo a live update", { instance: name, project, err: err.message }));
        await undoSize?.().catch((err: Error) => this.d.log.error("could not put the root disk size back", { instance: name, project, err: err.message }));
        throw e;
      }
      this.d.events.lifecycle("instance-updated", instanceUrl(project, name), {}, project);
      return { before, after };
    }));
  }

  /** The root disk's size: checked against the pool, put on new volumes, changed (root-disk.ts). */
  readonly roots: RootDisks;

  /** The instance's profiles, resolved in order (for expansion). */
  layers(r: InstanceRecord): Promise<ProfileLayer[]> {
    return this.d.profiles.resolve(r.project, r.profiles);
  }

  /** For a list: each record's layers, from one read of each project's profiles. */
  async layerResolver(records: readonly InstanceRecord[]): Promise<(r: InstanceRecord) => ProfileLayer[]> {
    const projects = [...new Set(records.map((r) => r.project))];
    const maps = new Map(
      await Promise.all(projects.map(async (p) => [p, new Map((await this.d.profiles.list(p)).map((x) => [x.name, x]))] as const)),
    );
    return (r) => layersOf(maps.get(r.project)!, r.profiles);
  }

  /** The instance's config and devices with its profiles applied. */
  async expanded(r: InstanceRecord): Promise<{ config: Record<string, string>; devices: Record<string, Record<string, string>> }> {
    const layers = await this.layers(r);
    return { config: expandConfig(r, layers), devices: expandDevices(r, layers) };
  }

  /** Renames a stopped instance with its volume and snapshots (rename.ts). */
  rename(project: string, name: string, newName: unknown): Promise<InstanceRecord> {
    return renameInstance(this.d, this, project, name, newName);
  }

  /** Deletes a stopped instance: driver artefacts, volume, record. */
  async delete(project: string, name: string): Promise<void> {
    await this.locks.with(`${project}/${name}`, `Instance "${name}"`, LOCK_TIMEOUT_MS, async () => {
      const r = await this.record(project, name);
      if (/^(true|1|yes|on)$/i.test(r.config["security.protection.delete"] ?? ""))
        throw badRequest(`Instance "${name}" is protected (security.protection.delete=true); unset it first`);
      if ((await this.d.driver.status(hostName(project, name))).status !== "Stopped")
        throw badRequest(`Instance "${name}" is running; stop it first, or delete with force`);
      await this.remove(r);
    });
    this.d.events.lifecycle("instance-deleted", instanceUrl(project, name), {}, project);
  }

  /** The instance's log directory (exec output), created on first use. */
  async logDir(project: string, name: string): Promise<string> {
    const dir = join(this.d.logsDir, hostName(project, name));
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /**
   * Removes everything of an instance, record last. The record is marked "deleting" first, so
   * it is never shown half-deleted and a crash midway is finished by recover().
   */
  async remove(r: InstanceRecord): Promise<void> {
    await this.d.store.put(instanceKey(r.project, r.name), { ...r, phase: "deleting" });
    await this.purge(r, false);
  }

  /** Engine artefacts, logs, volume, snapshot records, record; `tolerant`: past what is already gone. */
  private async purge(r: InstanceRecord, tolerant: boolean): Promise<void> {
    const step = (p: Promise<void>) => (tolerant ? p.catch(() => {}) : p);
    const host = hostName(r.project, r.name);
    await step(this.d.driver.delete(host, { force: true }));
    await rm(join(this.d.logsDir, host), { recursive: true, force: true });
    await step(this.d.storage.deleteInstanceVolume(r.pool, r.project, r.name, r.type));
    const snaps = await this.d.store.list(snapshotPrefix(r.project, r.name));
    if (snaps.length) await this.d.store.txn((tx) => snaps.forEach((d) => tx.delete(d.key)));
    await this.d.store.delete(instanceKey(r.project, r.name));
  }

  /** At start-up: undo creates and finish deletes that a crash interrupted (records "creating", "deleting"). */
  async recover(): Promise<string[]> {
    const undone: string[] = [];
    for (const { value: r } of await this.d.store.list<InstanceRecord>(instancePrefix())) {
      if (r.phase === "ready") continue;
      await this.purge(r, true);
      undone.push(`${r.project}/${r.name}`);
      const what = r.phase === "deleting" ? "deletion" : "creation";
      this.d.log.warn(`removed an instance whose ${what} was interrupted`, { project: r.project, instance: r.name });
    }
    return undone;
  }
}
