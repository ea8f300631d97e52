import { chmod, mkdir, mkdtemp, readdir, rename, rm, rmdir, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { badRequest, conflict, notFound } from "../api/errors.js";
import type { EventHub } from "../core/events.js";
import { parseCompression, type Compression } from "../images/format.js";
import type { InstanceRecord } from "../instances/record.js";
import type { ProfileLayer } from "../profiles/record.js";
import type { ProfileStore } from "../profiles/store.js";
import type { DocumentStore } from "../state/store.js";
import { exportOptimizedInstanceVolume } from "../storage/optimized-volumes.js";
import type { StorageService } from "../storage/service.js";
import { volumeName } from "../storage/service.js";
import { backupYaml, GO_ZERO_TIME, type BackupIndex } from "./config.js";
import { backupConfig, type BackupSnapshotRecord } from "./describe.js";
import { writeBackupTarball, type TarballSource } from "./export.js";
import {
  BACKUPS as KEY,
  backupKey as key,
  backupUrl,
  checkBackupName,
  instanceBackupsPrefix,
  toApiBackup,
  type BackupRecord,
  type BackupsPost,
  type InstanceBackup,
} from "./record.js";

export { backupUrl, toApiBackup, type BackupRecord, type BackupsPost, type InstanceBackup };
export type { BackupSnapshotRecord };

/** Where a backup gets an instance's snapshots from: ready ones, oldest first, with their trees. */
export interface BackupSnapshots {
  list(project: string, instance: string): Promise<{ record: BackupSnapshotRecord; path: string }[]>;
}

/** What the backup service needs of the instances service. */
export interface BackupInstances {
  record(project: string, name: string): Promise<InstanceRecord>;
  layers(r: InstanceRecord): Promise<ProfileLayer[]>;
}

const SCRATCH = ".creating-";

/**
 * Instance backups in LXD's format: each is one tarball at
 * <LODGE_DIR>/backups/instances/<volume name>/<backup> (0600, directories 0700), made from the
 * instance's volume as it is on disk (ownership included: volatile.last_state.idmap in
 * backup.yaml tells an importer how), with a record per backup in the store.
 */
export class BackupService {
  readonly dir: string;

  constructor(
    private readonly d: {
      dir: string;
      store: DocumentStore;
      storage: StorageService;
      instances: BackupInstances;
      profiles: ProfileStore;
      events: EventHub;
      /** Instance snapshots, once the snapshots service is wired in; without it backups hold none. */
      snapshots?: BackupSnapshots;
    },
  ) {
    this.dir = join(d.dir, "backups");
  }

  /** Makes the directories and removes what a crash left half-written. */
  async init(): Promise<void> {
    await mkdir(join(this.dir, "instances"), { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    for (const e of await readdir(this.dir)) if (e.startsWith(".import-")) await rm(join(this.dir, e), { recursive: true, force: true });
    for (const inst of await readdir(join(this.dir, "instances")))
      for (const f of await readdir(join(this.dir, "instances", inst)).catch(() => []))
        if (f.startsWith(SCRATCH)) await rm(join(this.dir, "instances", inst, f), { recursive: true, force: true });
    await this.pruneExpired();
  }

  /**
   * Deletes backups past their expires_at (`lxc export` makes one that expires in a day, so a
   * download that never finished does not keep it forever). Run at start and before each create.
   */
  async pruneExpired(now = Date.now()): Promise<string[]> {
    const gone: string[] = [];
    for (const { value: b } of await this.d.store.list<BackupRecord>(KEY)) {
      if (b.expires_at === GO_ZERO_TIME || Date.parse(b.expires_at) > now) continue;
      await rm(this.filePath(b.project, b.instance, b.name), { force: true });
      await this.d.store.delete(key(b.project, b.instance, b.name));
      gone.push(`${b.project}/${b.instance}/${b.name}`);
    }
    return gone;
  }

  private fileDir(project: string, instance: string): string {
    return join(this.dir, "instances", volumeName(project, instance));
  }

  filePath(project: string, instance: string, name: string): string {
    return join(this.fileDir(project, instance), name);
  }

  async list(project: string, instance: string): Promise<BackupRecord[]> {
    await this.d.instances.record(project, instance);
    return (await this.d.store.list<BackupRecord>(instanceBackupsPrefix(project, instance))).map((d) => d.value);
  }

  /** Every backup of a project (or of all projects) in the wire shape, by "<project>/<instance>". */
  async byInstance(project?: string): Promise<Map<string, InstanceBackup[]>> {
    const out = new Map<string, InstanceBackup[]>();
    for (const { value: b } of await this.d.store.list<BackupRecord>(project ? `${KEY}${project}/` : KEY)) {
      const k = `${b.project}/${b.instance}`;
      out.set(k, [...(out.get(k) ?? []), toApiBackup(b)]);
    }
    return out;
  }

  async get(project: string, instance: string, name: string): Promise<BackupRecord> {
    await this.d.instances.record(project, instance);
    const doc = await this.d.store.get<BackupRecord>(key(project, instance, name));
    if (!doc) throw notFound(`Backup "${name}" of instance "${instance}" not found`);
    return doc.value;
  }

  /** Checks a create request on the request itself (400/404/409 before any operation). */
  async prepare(project: string, instance: string, req: BackupsPost): Promise<BackupRecord> {
    const r = await this.d.instances.record(project, instance);
    if (r.type !== "container")
      throw badRequest(`Backups of virtual machines are not supported yet: publish "${instance}" as an image (lxc publish) to keep a copy of it`);
    await this.pruneExpired();
    if (req.optimized_storage) {
      const caps = await this.d.storage.capabilities(r.pool);
      if (!caps.optimizedBackups)
        throw badRequest(`Optimized backups need a storage driver that has them; pool "${r.pool}" (${(await this.d.storage.pool(r.pool)).driver}) has none`);
    }
    const compression = parseCompression(req.compression_algorithm, "gzip");
    const existing = await this.list(project, instance);
    let name = req.name ?? "";
    if (name === "") {
      let n = 0;
      for (const b of existing) {
        const m = /^backup(\d+)$/.exec(b.name);
        if (m) n = Math.max(n, Number(m[1]) + 1);
      }
      name = `backup${n}`;
    }
    checkBackupName(name);
    if (existing.some((b) => b.name === name)) throw conflict(`Backup "${name}" of instance "${instance}" already exists`);
    const expires = req.expires_at && !req.expires_at.startsWith("0001-01-01") ? new Date(req.expires_at) : undefined;
    if (expires && Number.isNaN(expires.getTime())) throw badRequest(`Invalid expires_at "${req.expires_at}": use RFC 3339`);
    return {
      name,
      project,
      instance,
      created_at: new Date().toISOString(),
      expires_at: expires ? expires.toISOString().replace(/\.000Z$/, "Z") : GO_ZERO_TIME,
      instance_only: !!(req.instance_only || req.container_only),
      optimized_storage: !!req.optimized_storage,
      compression_algorithm: compression,
    };
  }

  /**
   * Writes the tarball (to a scratch name, renamed when whole) and then the record. Snapshots
   * go in unless instance_only, when a snapshot source is wired (deps.snapshots). Optimized:
   * the pool's driver writes its own streams of the volume and snapshots (exportOptimized).
   */
  async create(rec: BackupRecord, opts: { signal?: AbortSignal; onProgress?: (text: string) => void } = {}): Promise<BackupRecord> {
    const { project, instance } = rec;
    const r = await this.d.instances.record(project, instance);
    const volume = await this.d.storage.instancePath(r.pool, project, instance, r.type);
    const pool = await this.d.storage.pool(r.pool);
    const layers = await this.d.instances.layers(r);
    const snaps = rec.instance_only || !this.d.snapshots ? [] : await this.d.snapshots.list(project, instance);
    const config = backupConfig(r, layers, pool, await this.d.profiles.list(project), snaps.map((x) => x.record));
    // LXD keeps backup.yaml in the volume at all times; Lodge writes it when it is needed
    // (an optimized stream carries it too, as LXD's does).
    const by = join(volume, "backup.yaml");
    await rm(by, { force: true });
    await writeFile(by, backupYaml(config), { mode: 0o400 });

    const dir = this.fileDir(project, instance);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const scratch = await mkdtemp(join(dir, SCRATCH));
    try {
      const index: BackupIndex = {
        name: instance,
        backend: pool.driver,
        pool: pool.name,
        snapshots: snaps.map((x) => x.record.name),
        optimized: rec.optimized_storage,
        optimized_header: rec.optimized_storage,
        type: "container",
        config,
      };
      let src: TarballSource;
      if (rec.optimized_storage) {
        const streams = join(scratch, ".streams");
        await mkdir(streams, { mode: 0o700 });
        const ref = await this.d.storage.instanceVolume(r.pool, project, instance, r.type);
        const files = await exportOptimizedInstanceVolume(this.d.storage, ref, index.snapshots, streams, opts.signal);
        src = { index, streams: { dir: streams, files } };
      } else {
        src = { index, trees: { volume, snapshots: snaps.map((x) => ({ name: x.record.name, path: x.path })) } };
      }
      const tarball = await writeBackupTarball(scratch, src, { compression: rec.compression_algorithm as Compression, ...opts });
      const final = this.filePath(project, instance, rec.name);
      if (await stat(final).catch(() => undefined)) throw conflict(`Backup "${rec.name}" of instance "${instance}" already exists`);
      await rename(tarball, final);
      try {
        await this.d.store.put(key(project, instance, rec.name), rec, { revision: 0 });
      } catch {
        await unlink(final).catch(() => {});
        throw conflict(`Backup "${rec.name}" of instance "${instance}" already exists`);
      }
    } finally {
      await rm(scratch, { recursive: true, force: true });
      await rm(by, { force: true });
    }
    this.d.events.lifecycle("instance-backup-created", backupUrl(project, instance, rec.name), {}, project);
    return rec;
  }

  async rename(project: string, instance: string, name: string, newName: unknown): Promise<void> {
    if (typeof newName !== "string") throw badRequest("The new backup name is missing");
    checkBackupName(newName);
    const rec = await this.get(project, instance, name);
    await this.d.store.txn(async (tx) => {
      if (await tx.get(key(project, instance, newName))) throw conflict(`Backup "${newName}" of instance "${instance}" already exists`);
      tx.delete(key(project, instance, name));
      tx.put(key(project, instance, newName), { ...rec, name: newName });
    });
    await rename(this.filePath(project, instance, name), this.filePath(project, instance, newName));
    this.d.events.lifecycle("instance-backup-renamed", backupUrl(project, instance, newName), { old_name: name }, project);
  }

  async delete(project: string, instance: string, name: string): Promise<void> {
    await this.get(project, instance, name);
    await rm(this.filePath(project, instance, name), { force: true });
    await this.d.store.delete(key(project, instance, name));
    await rmdir(this.fileDir(project, instance)).catch(() => {});
    this.d.events.lifecycle("instance-backup-deleted", backupUrl(project, instance, name), {}, project);
  }

  /** The instance is gone: so are its backups (as LXD does). */
  async deleteAll(project: string, instance: string): Promise<void> {
    for (const d of await this.d.store.list<BackupRecord>(instanceBackupsPrefix(project, instance))) await this.d.store.delete(d.key);
    await rm(this.fileDir(project, instance), { recursive: true, force: true });
  }

  /** The instance was renamed: its backups follow it. */
  async renameAll(project: string, instance: string, newName: string): Promise<void> {
    const docs = await this.d.store.list<BackupRecord>(instanceBackupsPrefix(project, instance));
    if (docs.length === 0) return;
    await rename(this.fileDir(project, instance), this.fileDir(project, newName)).catch(() => {});
    await this.d.store.txn((tx) => {
      for (const d of docs) {
        tx.delete(d.key);
        tx.put(key(project, newName, d.value.name), { ...d.value, instance: newName });
      }
    });
  }
}
