import { badRequest } from "../api/errors.js";
import type { EventHub } from "../core/events.js";
import type { Logger } from "../core/logger.js";
import type { DocumentStore } from "../state/store.js";
import type { StorageService } from "../storage/service.js";
import { copyWithSnapshots } from "./copy-volume.js";
import type { InstanceEngines } from "./drivers/engines.js";
import { expandDevices, rootDisk } from "./expand.js";
import { hostName, instanceKey, instanceUrl, instancePrefix, type InstanceRecord } from "./record.js";
import { LOCK_TIMEOUT_MS, type InstanceService } from "./service.js";
import { readySnapshots, snapshotKey, snapshotPrefix } from "./snapshots/record.js";
import type { ContainerSpecs } from "./spec.js";

export interface MoveDeps {
  store: DocumentStore;
  storage: StorageService;
  instances: InstanceService;
  driver: InstanceEngines;
  specs: ContainerSpecs;
  events: EventHub;
  log: Logger;
}

/**
 * Moves a stopped instance's volume (and its snapshots) to another pool, as LXD's
 * `POST /1.0/instances/<n>` with `pool` (`lxc move c1 -s POOL`): the instance stays the same
 * record; its root disk names the new pool. Crash-safe through the record's `move` field: the
 * new volume is made while `move.to` is set (a crash: it is removed at start), the record then
 * switches pools in one write with `move.from` set (a crash: the old volume is removed at start).
 */
export class PoolMover {
  constructor(private readonly d: MoveDeps) {}

  async check(project: string, name: string, pool: string): Promise<void> {
    const r = await this.d.instances.record(project, name);
    await this.d.storage.pool(pool);
    if (r.pool === pool) throw badRequest(`Instance "${name}" is already in pool "${pool}"`);
  }

  /** `instanceOnly` leaves the snapshots behind: they go with the old volume, as LXD's do. */
  async move(project: string, name: string, pool: string, opts: { instanceOnly?: boolean; signal?: AbortSignal } = {}): Promise<InstanceRecord> {
    const signal = opts.signal;
    return this.d.instances.locks.with(`${project}/${name}`, `Instance "${name}"`, LOCK_TIMEOUT_MS, async () => {
      const r = await this.d.instances.record(project, name);
      if (r.pool === pool) throw badRequest(`Instance "${name}" is already in pool "${pool}"`);
      await this.d.storage.pool(pool);
      if ((await this.d.driver.status(hostName(project, name))).status !== "Stopped")
        throw badRequest(`Instance "${name}" must be stopped to be moved to another pool`);
      const { store, storage } = this.d;
      const key = instanceKey(project, name);
      await store.put(key, { ...r, move: { to: pool } });
      let moved: InstanceRecord;
      try {
        const from = await storage.instanceVolume(r.pool, project, name, r.type);
        const fromPath = await storage.instancePath(r.pool, project, name, r.type);
        const snaps = opts.instanceOnly ? [] : (await readySnapshots(store, project, name)).map((s) => s.name);
        const volume = await copyWithSnapshots({
          storage,
          from,
          fromPath,
          snapshots: snaps,
          create: (fromSnapshot) => storage.copyInstanceVolume({ from, fromSnapshot, toPool: pool, project, name, type: r.type, signal }),
          live: (work) => work(),
          snapshotted: async () => {},
          signal,
        });
        // The root disk names the new pool: a local one is changed, one from a profile overridden.
        const root = rootDisk(expandDevices(r, await this.d.instances.layers(r)))!;
        const rootDevice = { ...(r.devices[root.name] ?? expandDevices(r, await this.d.instances.layers(r))[root.name]!), pool };
        moved = { ...r, pool, devices: { ...r.devices, [root.name]: rootDevice }, move: { from: r.pool } };
        await this.d.instances.roots.apply(moved, await this.d.instances.layers(r));
        await this.d.driver.delete(hostName(project, name));
        await this.d.driver.create(await this.d.specs.build(moved, volume.path));
        await store.put(key, moved);
      } catch (e) {
        await this.undoCopy(r, pool);
        throw e;
      }
      if (opts.instanceOnly) for (const s of await readySnapshots(store, project, name)) await store.put(snapshotKey(project, name, s.name), { ...s, phase: "deleting" });
      await this.finish(moved);
      this.d.events.lifecycle("instance-updated", instanceUrl(project, name), {}, project);
      return (await store.get<InstanceRecord>(key))!.value;
    });
  }

  /** Removes the new pool's copy and puts the instance back as it was (its liblxc config too). */
  private async undoCopy(r: InstanceRecord, pool: string): Promise<void> {
    await this.d.storage.deleteInstanceVolume(pool, r.project, r.name, r.type).catch(() => {});
    const back: InstanceRecord = { ...r };
    delete back.move;
    await this.d.driver.delete(hostName(r.project, r.name)).catch(() => {});
    await this.d.driver.create(await this.d.specs.build(back, await this.d.storage.instancePath(r.pool, r.project, r.name, r.type)));
    await this.d.store.put(instanceKey(r.project, r.name), back);
  }

  /** Removes the old pool's volume (snapshots left behind, marked "deleting", with it) and the move mark. */
  private async finish(r: InstanceRecord): Promise<void> {
    await this.d.storage.deleteInstanceVolume(r.move!.from!, r.project, r.name, r.type);
    for (const d of await this.d.store.list<{ phase: string }>(snapshotPrefix(r.project, r.name))) if (d.value.phase === "deleting") await this.d.store.delete(d.key);
    const done = { ...r };
    delete done.move;
    await this.d.store.put(instanceKey(r.project, r.name), done);
  }

  /** At start-up: finishes or undoes pool moves that a crash interrupted. */
  async recover(): Promise<string[]> {
    const fixed: string[] = [];
    for (const { value: r } of await this.d.store.list<InstanceRecord>(instancePrefix())) {
      if (!r.move || r.phase !== "ready") continue;
      if (r.move.to) await this.undoCopy(r, r.move.to);
      else if (r.move.from) await this.finish(r);
      fixed.push(`${r.project}/${r.name}`);
      this.d.log.warn("finished a pool move that was interrupted", { project: r.project, instance: r.name, undone: !!r.move.to });
    }
    return fixed;
  }
}
