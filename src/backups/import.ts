import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { once } from "node:events";
import { join } from "node:path";
import { badRequest } from "../api/errors.js";
import { deviceMembers, extractTarball, inspectTarball } from "../images/archive.js";
import { detectFileFormat } from "../images/format.js";
import { normalizeMember } from "../images/members.js";
import { ProgressTracker, progressText } from "../images/progress.js";
import type { InstanceRecord } from "../instances/record.js";
import type { InstanceService } from "../instances/service.js";
import type { ProfileStore } from "../profiles/store.js";
import type { StorageService } from "../storage/service.js";
import { parseBackupYaml, parseIndex } from "./config.js";

export interface ImportDeps {
  /** Where scratch files go (LODGE_DIR/backups). */
  dir: string;
  instances: Pick<InstanceService, "createFilled">;
  storage: Pick<StorageService, "pool" | "pools">;
  profiles: Pick<ProfileStore, "list">;
}

export interface ImportRequest {
  project: string;
  body: AsyncIterable<Buffer>;
  /** X-LXD-name: the new instance's name (default: the backup's). */
  name?: string;
  /** X-LXD-pool: the pool to put it in (default: the backup's, if it exists here). */
  pool?: string;
  contentLength?: number;
  signal?: AbortSignal;
  onProgress?: (text: string) => void;
}

const INDEX = "backup/index.yaml";
const CONFIG = "backup/container/backup.yaml";

/** volatile.* keys of a backup that describe the data rather than this host's allocation. */
const KEPT_VOLATILE = /^volatile\.(uuid|base_image|last_state\.idmap|[^.]+\.hwaddr)$/;

/**
 * `lxc import`: a backup tarball as LXD 5.0.2 writes it (dir pool, not optimized) becomes an
 * instance. The upload lands in a private scratch file; every member is checked before anything
 * is unpacked (members.ts, layout "backup": nothing outside the tree, no device nodes outside
 * rootfs/dev, no hard links out of a rootfs, nothing written through a symlink, and the YAML
 * files and directories are what their names say); the index must agree with the tree and
 * with backup.yaml. Only then is the instance volume unpacked, straight into a new, empty volume
 * that the instance create owns, so a failure at any step leaves no volume and no record.
 *
 * Snapshots in the backup are checked but not restored yet (instance snapshots have no records
 * on this branch): the instance is imported alone.
 */
export async function importBackup(d: ImportDeps, req: ImportRequest): Promise<{ record: InstanceRecord; skippedSnapshots: string[] }> {
  const scratch = await mkdtemp(join(d.dir, ".import-"));
  try {
    const file = join(scratch, "backup");
    await receive(req.body, file, req);
    const fmt = await detectFileFormat(file, "backup").catch(() => {
      throw badRequest("Invalid backup: the file is not a tarball (plain, gzip, xz, lzma, bzip2 or zstd)");
    });
    if (fmt.kind !== "tar") throw badRequest("Invalid backup: the file is not a tarball");
    req.onProgress?.("Checking the backup");
    const listing = await inspectTarball(file, fmt.compression, { what: "backup tarball", layout: "backup", capture: [INDEX, CONFIG], signal: req.signal });
    const indexText = listing.captured.get(INDEX);
    if (!indexText) throw badRequest("Invalid backup: backup/index.yaml is missing (or larger than 1 MiB)");
    const index = parseIndex(indexText.toString("utf8"));
    if (index.optimized) throw badRequest(`Optimized backups (a "${index.backend}" driver's own stream) cannot be imported here: no storage driver of this server has them`);
    if (index.type !== "container") throw badRequest(`Backups of a ${index.type} cannot be imported yet: only containers`);

    // The tree must be what the index says: the instance volume, and exactly its snapshots.
    const paths = listing.members.map((m) => normalizeMember(m.name)).filter((p): p is string => typeof p === "string");
    const inTree = new Set(paths.flatMap((p) => /^backup\/snapshots\/([^/]+)/.exec(p)?.[1] ?? []));
    const listed = new Set(index.snapshots);
    for (const s of listed) if (!inTree.has(s)) throw badRequest(`Invalid backup: backup/index.yaml lists snapshot "${s}", which is not in the tarball`);
    for (const s of inTree) if (!listed.has(s)) throw badRequest(`Invalid backup: the tarball holds snapshot "${s}", which backup/index.yaml does not list`);
    if (!paths.includes("backup/container/rootfs")) throw badRequest("Invalid backup: backup/container/rootfs/ is missing");
    const configText = listing.captured.get(CONFIG);
    if (!configText) throw badRequest("Invalid backup: backup/container/backup.yaml is missing (or larger than 1 MiB)");
    const config = parseBackupYaml(configText.toString("utf8"));
    const inst = config.container;
    if (inst.name !== index.name) throw badRequest(`Invalid backup: backup/index.yaml names instance "${index.name}", but backup.yaml "${inst.name}"`);
    const yamlSnaps = new Set(config.snapshots.map((x) => x.name));
    for (const s of listed) if (!yamlSnaps.has(s)) throw badRequest(`Invalid backup: snapshot "${s}" is in the index but not in backup.yaml`);
    if (inst.type !== "container") throw badRequest(`Backups of a ${inst.type} cannot be imported yet: only containers`);

    // The pool: the one asked for, else the backup's if this server has it, else the profiles'.
    let pool = req.pool || undefined;
    if (pool) await d.storage.pool(pool);
    else if (index.pool && (await d.storage.pools()).some((p) => p.name === index.pool)) pool = index.pool;
    const known = new Set((await d.profiles.list(req.project)).map((p) => p.name));
    const missing = inst.profiles.filter((p) => !known.has(p));
    if (missing.length) throw badRequest(`The backup's instance uses profiles that do not exist here: ${missing.join(", ")}; create them first`);

    const volumeMember = listing.members.find((m) => normalizeMember(m.name) === "backup/container")!;
    const only = volumeMember.name.replace(/\/+$/, "");
    const keepVolatile = Object.fromEntries(Object.entries(inst.config).filter(([k]) => KEPT_VOLATILE.test(k)));
    req.signal?.throwIfAborted();
    const record = await d.instances.createFilled(
      {
        project: req.project,
        name: req.name || index.name,
        pool,
        architecture: inst.architecture,
        description: inst.description,
        config: inst.config,
        devices: inst.devices,
        profiles: inst.profiles,
        ephemeral: inst.ephemeral,
        keepVolatile,
      },
      async (volume) => {
        req.onProgress?.("Unpacking the backup");
        await extractTarball(file, volume, {
          exclude: deviceMembers(listing.members),
          only,
          stripComponents: only.split("/").length,
          signal: req.signal,
        });
        // LXD's own description of the instance; Lodge's record is the truth here.
        await rm(join(volume, "backup.yaml"), { force: true });
      },
      req.signal,
    );
    return { record, skippedSnapshots: index.snapshots };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function receive(body: AsyncIterable<Buffer>, file: string, req: ImportRequest): Promise<void> {
  const out = createWriteStream(file, { mode: 0o600 });
  const failed = once(out, "error").then(([e]) => Promise.reject(e as Error));
  failed.catch(() => {});
  const progress = new ProgressTracker("backup", (p) => req.onProgress?.(progressText(p)), req.contentLength);
  try {
    for await (const chunk of body) {
      req.signal?.throwIfAborted();
      progress.add(chunk.length);
      if (!out.write(chunk)) await Promise.race([once(out, "drain"), failed]);
    }
    out.end();
    await Promise.race([once(out, "finish"), failed]);
  } catch (e) {
    out.destroy();
    throw e;
  }
  progress.finish();
}
