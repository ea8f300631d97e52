import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { badRequest } from "../api/errors.js";
import { inspectTarball } from "../images/archive.js";
import { detectFileFormat } from "../images/format.js";
import type { InstanceRecord } from "../instances/record.js";
import type { InstanceService } from "../instances/service.js";
import type { SnapshotService } from "../instances/snapshots/service.js";
import type { ProfileStore } from "../profiles/store.js";
import type { DocumentStore } from "../state/store.js";
import { checkOptimizedTarget, importOptimizedInstanceVolume } from "../storage/optimized-volumes.js";
import type { StorageService } from "../storage/service.js";
import { CAPTURED, planImport } from "./import-check.js";
import { receivePlainTar } from "./receive.js";
import { extractStreams, fillFromTrees, recordStreamSnapshots, type FillContext } from "./import-fill.js";

export interface ImportDeps {
  /** Where scratch files go (LODGE_DIR/backups). */
  dir: string;
  store: DocumentStore;
  instances: Pick<InstanceService, "createFilled">;
  storage: Pick<StorageService, "pool" | "pools" | "driverOf" | "instanceVolume" | "volumeKey">;
  snapshots: Pick<SnapshotService, "addImported">;
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

/** volatile.* keys of a backup that describe the data rather than this host's allocation. */
const KEPT_VOLATILE = /^volatile\.(uuid|base_image|last_state\.idmap|[^.]+\.hwaddr)$/;

/**
 * `lxc import`: a backup tarball as LXD 5.0.2 writes it becomes an instance with its
 * snapshots. The upload lands in a private scratch file; every member is checked before
 * anything is unpacked (members.ts, layout "backup": nothing outside the tree, no device nodes
 * outside rootfs/dev, no hard links out of a rootfs, nothing written through a symlink, and the
 * YAML files and directories are what their names say); the index must agree with the tree
 * and with backup.yaml (import-check.ts). Only then is the data put straight into a new volume
 * that the instance create owns (import-fill.ts): the snapshots (volume snapshots through the
 * pool's driver, and their records) and the instance's tree; or, for an optimized backup,
 * the driver's own streams, into a pool of that driver only. A failure at any step leaves no
 * instance, volume, snapshot or record; a crash leaves an instance "creating", which the next
 * start removes with all of it.
 */
export async function importBackup(d: ImportDeps, req: ImportRequest): Promise<{ record: InstanceRecord }> {
  const scratch = await mkdtemp(join(d.dir, ".import-"));
  try {
    const file = join(scratch, "backup");
    await receivePlainTar(req.body, file, req);
    const fmt = await detectFileFormat(file, "backup").catch(() => {
      throw badRequest("Invalid backup: the file is not a tarball (plain, gzip, xz, lzma, bzip2 or zstd)");
    });
    if (fmt.kind !== "tar") throw badRequest("Invalid backup: the file is not a tarball");
    req.onProgress?.("Checking the backup");
    const listing = await inspectTarball(file, fmt.compression, { what: "backup tarball", layout: "backup", capture: CAPTURED, signal: req.signal });
    const plan = planImport(listing);
    const { index } = plan;
    const inst = plan.config.container;

    // The pool: the one asked for, else the backup's if this server has it, else the profiles'.
    let pool = req.pool || undefined;
    if (pool) await d.storage.pool(pool);
    else if (index.pool && (await d.storage.pools()).some((p) => p.name === index.pool)) pool = index.pool;
    const known = new Set((await d.profiles.list(req.project)).map((p) => p.name));
    const missing = inst.profiles.filter((p) => !known.has(p));
    if (missing.length) throw badRequest(`The backup's instance uses profiles that do not exist here: ${missing.join(", ")}; create them first`);

    const name = req.name || index.name;
    const keepVolatile = Object.fromEntries(Object.entries(inst.config).filter(([k]) => KEPT_VOLATILE.test(k)));
    const c: FillContext = { file, members: listing.members, plan, instance: { project: req.project, name }, signal: req.signal, onProgress: req.onProgress };
    req.signal?.throwIfAborted();
    const record = await d.instances.createFilled(
      {
        project: req.project,
        name,
        pool,
        architecture: inst.architecture,
        description: inst.description,
        config: inst.config,
        devices: inst.devices,
        profiles: inst.profiles,
        ephemeral: inst.ephemeral,
        keepVolatile,
      },
      (volume, undo) => (plan.streams ? recordStreamSnapshots(d, c, volume, undo) : fillFromTrees(d, c, volume, undo)),
      req.signal,
      plan.streams
        ? async (target) => {
            await checkOptimizedTarget(d.storage, target, index.backend); // before the streams are unpacked
            const streams = join(scratch, "streams");
            await extractStreams(c, streams);
            req.onProgress?.("Receiving the storage driver's streams");
            return importOptimizedInstanceVolume(d, { pool: target, project: req.project, name, backend: index.backend, snapshots: index.snapshots, dir: streams, signal: req.signal });
          }
        : undefined,
    );
    return { record };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

