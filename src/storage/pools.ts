/**
 * Storage pools (/1.0/storage-pools): create, read, change, delete, resources, and who uses
 * them. A pool's record is written "creating" before its driver makes anything, so a create
 * cut short by a crash is undone at the next start; a failed create leaves no record and
 * nothing of the pool on the host.
 */
import { badRequest, conflict, notFound, preconditionFailed } from "../api/errors.js";
import { etagOf } from "../api/etag.js";
import type { StoragePool, StoragePoolPut, StoragePoolResources, StoragePoolsPost } from "../api/storage.js";
import { validateConfig, type KeyTable } from "../config/keys.js";
import type { EventHub } from "../core/events.js";
import type { Logger } from "../core/logger.js";
import { KeyedLock } from "../instances/locks.js";
import type { DocumentStore } from "../state/store.js";
import type { StorageDriver } from "./driver.js";
import { POOLS, type PoolRecord, type StorageService, type VolumeRecord } from "./service.js";
import { poolUsers, type StorageUserSource } from "./users.js";

const LOCK_TIMEOUT_MS = 60_000;

/** Keys every pool takes, whatever its driver. */
const COMMON_KEYS: KeyTable = {
  "volume.size": { type: "size", description: "Default size of new volumes (drivers with quotas)" },
};

/** Keys that say where and how big a pool is: fixed once it exists. */
const FIXED_KEYS = new Set(["source", "size"]);

export const poolUrl = (name: string) => `/1.0/storage-pools/${encodeURIComponent(name)}`;

export function checkPoolName(name: unknown): string {
  if (typeof name !== "string" || name === "") throw badRequest("A storage pool name is required");
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) throw badRequest(`Invalid storage pool name "${name}": letters, digits, "_", "." and "-", starting with a letter or digit`);
  return name;
}

export class PoolService {
  readonly locks = new KeyedLock();

  constructor(private readonly d: { store: DocumentStore; storage: StorageService; users: StorageUserSource; events: EventHub; log: Logger }) {}

  etag(p: PoolRecord): string {
    return etagOf({ config: p.config, description: p.description });
  }

  private validate(driver: StorageDriver, config: unknown): Record<string, string> {
    if (config !== undefined && config !== null && (typeof config !== "object" || Array.isArray(config))) throw badRequest("config must be a map of keys to values");
    return validateConfig({ ...COMMON_KEYS, ...driver.poolKeys }, (config ?? {}) as Record<string, unknown>, ["user."], "storage pool");
  }

  async view(p: PoolRecord): Promise<StoragePool> {
    return { name: p.name, driver: p.driver, description: p.description, status: p.status, config: p.config, used_by: await poolUsers(this.d.users, this.d.storage, p.name), locations: ["none"] };
  }

  async list(): Promise<StoragePool[]> {
    return Promise.all((await this.d.storage.pools()).filter((p) => p.phase !== "creating").map((p) => this.view(p)));
  }

  async get(name: string): Promise<{ pool: StoragePool; etag: string }> {
    const p = await this.d.storage.pool(name);
    if (p.phase === "creating") throw notFound(`Storage pool "${name}" not found`);
    return { pool: await this.view(p), etag: this.etag(p) };
  }

  async resources(name: string): Promise<StoragePoolResources> {
    const p = await this.d.storage.pool(name);
    return this.d.storage.driverOf(p).poolResources(p);
  }

  async create(req: StoragePoolsPost): Promise<PoolRecord> {
    if (!req || typeof req !== "object" || Array.isArray(req)) throw badRequest("The request body must be a storage pool object");
    const name = checkPoolName(req.name);
    if (typeof req.driver !== "string" || !req.driver) throw badRequest('"driver" is required (dir or btrfs)');
    const supported = (await this.d.storage.supportedDrivers()).map((s) => s.name);
    if (!supported.includes(req.driver)) throw badRequest(`Storage driver "${req.driver}" is not available here (available: ${supported.join(", ")})`);
    if (typeof (req.description ?? "") !== "string") throw badRequest("description must be a string");
    const draft: PoolRecord = { name, driver: req.driver, config: {}, description: req.description ?? "", status: "Created", phase: "creating" };
    const driver = this.d.storage.driverOf(draft);
    draft.config = this.validate(driver, req.config);
    return this.locks.with(name, `Storage pool "${name}"`, LOCK_TIMEOUT_MS, async () => {
      try {
        await this.d.store.put(POOLS + name, draft, { revision: 0 });
      } catch {
        throw conflict(`Storage pool "${name}" already exists`);
      }
      try {
        const config = await driver.createPool(draft);
        const ready: PoolRecord = { ...draft, config, phase: undefined };
        delete ready.phase;
        await this.d.store.put(POOLS + name, ready);
        this.d.events.lifecycle("storage-pool-created", poolUrl(name));
        this.d.log.info("storage pool created", { pool: name, driver: draft.driver });
        return ready;
      } catch (e) {
        // What the driver made so far (a loop file, directories) goes with the record.
        await driver.deletePool({ ...draft, config: { ...draft.config } }).catch(() => {});
        await this.d.store.delete(POOLS + name);
        throw badRequest(`Failed to create storage pool "${name}": ${(e as Error).message}`);
      }
    });
  }

  async update(name: string, put: StoragePoolPut, mode: "put" | "patch", ifMatch?: string): Promise<void> {
    if (!put || typeof put !== "object" || Array.isArray(put)) throw badRequest("The request body must be a storage pool object");
    await this.locks.with(name, `Storage pool "${name}"`, LOCK_TIMEOUT_MS, async () => {
      const before = await this.d.storage.pool(name);
      if (ifMatch && ifMatch !== this.etag(before)) throw preconditionFailed(`Storage pool "${name}" changed since it was read (ETag mismatch)`);
      const driver = this.d.storage.driverOf(before);
      let config = mode === "put" ? this.validate(driver, put.config ?? {}) : { ...before.config, ...this.validate(driver, put.config ?? {}) };
      config = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== ""));
      // A PUT need not repeat where the pool is; those keys cannot change anyway.
      for (const k of FIXED_KEYS) {
        if (mode === "put" && config[k] === undefined && before.config[k] !== undefined) config[k] = before.config[k]!;
        if (config[k] !== before.config[k]) throw badRequest(`Storage pool config key "${k}" cannot be changed once the pool exists`);
      }
      if (typeof (put.description ?? "") !== "string") throw badRequest("description must be a string");
      const description = put.description ?? (mode === "put" ? "" : before.description);
      await this.d.store.put(POOLS + name, { ...before, config, description });
    });
    this.d.events.lifecycle("storage-pool-updated", poolUrl(name));
  }

  /** Deletes an unused pool; its image volumes (caches) go with it. */
  async delete(name: string): Promise<void> {
    await this.locks.with(name, `Storage pool "${name}"`, LOCK_TIMEOUT_MS, async () => {
      const p = await this.d.storage.pool(name);
      const users = (await poolUsers(this.d.users, this.d.storage, name)).filter((u) => !u.startsWith("/1.0/images/"));
      if (users.length) throw badRequest(`The storage pool is currently in use: "${name}" is used by ${users.join(", ")}`);
      const driver = this.d.storage.driverOf(p);
      for (const v of (await this.d.storage.volumes(name)).filter((v: VolumeRecord) => v.type === "image")) await this.d.storage.deleteImageVolume(name, v.name);
      await driver.deletePool(p);
      await this.d.store.delete(POOLS + name);
    });
    this.d.events.lifecycle("storage-pool-deleted", poolUrl(name));
  }
}
