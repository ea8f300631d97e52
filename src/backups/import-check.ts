/**
 * What an uploaded backup holds, checked before a byte of it is unpacked: the index must agree
 * with the tarball's members and with backup.yaml, and a backup is either trees (every pool) or
 * a driver's streams (optimized), never a mix.
 */
import { badRequest } from "../api/errors.js";
import { normalizeMember } from "../images/members.js";
import type { TarListing, TarMember } from "../images/tar-reader.js";
import { parseBackupYaml, parseIndex, type ParsedBackupConfig, type ParsedIndex, type ParsedSnapshot } from "./config.js";
import { checkOptimizedHeader, OPTIMIZED_HEADER, OPTIMIZED_MEMBER } from "./optimized.js";

export const INDEX = "backup/index.yaml";
export const CONFIG = "backup/container/backup.yaml";
/** Members whose content the check reads (captured while the tarball is listed). */
export const CAPTURED = [INDEX, CONFIG, OPTIMIZED_HEADER];

export interface BackupPlan {
  index: ParsedIndex;
  /** The instance and its snapshots as backup.yaml (or, optimized, the index) describes them. */
  config: ParsedBackupConfig;
  /** The snapshots to restore, oldest first (the index's order), as backup.yaml describes them. */
  snapshots: ParsedSnapshot[];
  /** Trees: each volume's subtree as the archive spells it, for tar to extract. */
  trees?: { container: string; snapshots: Map<string, string> };
  /** Optimized: the stream members as the archive spells them. */
  streams?: string[];
}

export function planImport(listing: TarListing): BackupPlan {
  const indexText = listing.captured.get(INDEX);
  if (!indexText) throw badRequest("Invalid backup: backup/index.yaml is missing (or larger than 1 MiB)");
  const index = parseIndex(indexText.toString("utf8"));
  if (index.type !== "container") throw badRequest(`Backups of a ${index.type} cannot be imported yet: only containers`);
  const paths = listing.members.map((m) => normalizeMember(m.name)).filter((p): p is string => typeof p === "string");
  const streamPaths = paths.filter((p) => OPTIMIZED_MEMBER.test(p));
  const listed = new Set(index.snapshots);

  if (index.optimized) {
    const config = index.config();
    if (!config) throw badRequest("Invalid backup: an optimized backup's backup/index.yaml must hold its config (backup.yaml)");
    const want = new Set(["backup/container.bin", ...index.snapshots.map((s) => `backup/snapshots/${s}.bin`)]);
    if (index.optimizedHeader) want.add(OPTIMIZED_HEADER);
    for (const p of paths) {
      if (p === "backup" || p === "backup/snapshots" || p === INDEX || want.has(p)) continue;
      throw badRequest(`Invalid backup: "${p}" does not belong in an optimized backup (backup/container.bin and backup/snapshots/<name>.bin)`);
    }
    for (const w of want) if (!paths.includes(w)) throw badRequest(`Invalid backup: ${w} is missing`);
    if (index.optimizedHeader) checkOptimizedHeader(listing.captured.get(OPTIMIZED_HEADER)?.toString("utf8") ?? "", index.snapshots);
    return {
      index,
      config,
      snapshots: snapshotsOf(index, config),
      streams: [...want].filter((p) => p.endsWith(".bin")).map((p) => spelling(listing.members, p)),
    };
  }

  if (streamPaths.length) throw badRequest(`Invalid backup: ${streamPaths[0]} is a storage driver's stream, but backup/index.yaml does not say the backup is optimized`);
  // The tree must be what the index says: the instance volume, and exactly its snapshots.
  const inTree = new Set(paths.flatMap((p) => /^backup\/snapshots\/([^/]+)/.exec(p)?.[1] ?? []));
  for (const s of listed) if (!inTree.has(s)) throw badRequest(`Invalid backup: backup/index.yaml lists snapshot "${s}", which is not in the tarball`);
  for (const s of inTree) if (!listed.has(s)) throw badRequest(`Invalid backup: the tarball holds snapshot "${s}", which backup/index.yaml does not list`);
  if (!paths.includes("backup/container/rootfs")) throw badRequest("Invalid backup: backup/container/rootfs/ is missing");
  for (const s of listed)
    if (!paths.includes(`backup/snapshots/${s}/rootfs`)) throw badRequest(`Invalid backup: backup/snapshots/${s}/rootfs/ is missing`);
  const configText = listing.captured.get(CONFIG);
  if (!configText) throw badRequest("Invalid backup: backup/container/backup.yaml is missing (or larger than 1 MiB)");
  const config = parseBackupYaml(configText.toString("utf8"));
  return {
    index,
    config,
    snapshots: snapshotsOf(index, config),
    trees: {
      container: spelling(listing.members, "backup/container"),
      snapshots: new Map(index.snapshots.map((s) => [s, spelling(listing.members, `backup/snapshots/${s}`)])),
    },
  };
}

/** The index's snapshots, as backup.yaml describes each; the instance names must agree. */
function snapshotsOf(index: ParsedIndex, config: ParsedBackupConfig): ParsedSnapshot[] {
  if (config.container.name !== index.name)
    throw badRequest(`Invalid backup: backup/index.yaml names instance "${index.name}", but backup.yaml "${config.container.name}"`);
  if (config.container.type !== "container") throw badRequest(`Backups of a ${config.container.type} cannot be imported yet: only containers`);
  return index.snapshots.map((s) => {
    const found = config.snapshots.find((x) => x.name === s);
    if (!found) throw badRequest(`Invalid backup: snapshot "${s}" is in the index but not in backup.yaml`);
    return found;
  });
}

/**
 * How the archive spells `path` (tar matches member names literally): the member's own name,
 * or the prefix of one below it ("./backup/container" when members start with "./").
 */
function spelling(members: readonly TarMember[], path: string): string {
  for (const m of members) {
    const p = normalizeMember(m.name);
    if (p !== path && !p?.startsWith(`${path}/`)) continue;
    return `${m.name.startsWith("./") ? "./" : ""}${path}`;
  }
  return path;
}
