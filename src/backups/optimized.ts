/**
 * Optimized backups (a storage driver's own streams instead of trees), as LXD 5.0.2 writes
 * them for btrfs: index.yaml says `optimized: true` and `optimized_header: true`, and
 * backup/optimized_header.yaml lists the subvolumes the streams hold, one per snapshot and one
 * for the volume, each at path "/" unless the volume has nested subvolumes (which LXD sends as
 * <prefix>_<encoded path>.bin; Lodge's driver refuses to export those, and an import of them is
 * refused here). LXD also writes each subvolume's UUID there; it needs none to import.
 */
import { parse as parseYaml, stringify } from "yaml";
import { badRequest } from "../api/errors.js";

export const OPTIMIZED_HEADER = "backup/optimized_header.yaml";

/** A member that is a driver stream or the header: what only an optimized backup holds. */
export const OPTIMIZED_MEMBER = /^backup\/(optimized_header\.yaml|container\.bin|snapshots\/[^/]+\.bin)$/;

interface Subvolume {
  path: string;
  snapshot: string;
  readonly: boolean;
}

export function optimizedHeaderYaml(snapshots: readonly string[]): string {
  const subvolumes: Subvolume[] = [
    ...snapshots.map((s) => ({ path: "/", snapshot: s, readonly: true })),
    { path: "/", snapshot: "", readonly: false },
  ];
  return stringify({ subvolumes }, { lineWidth: 0 });
}

/**
 * Checks an optimized header against the index's snapshots: exactly one root subvolume per
 * snapshot and one for the volume. Nested subvolumes are refused with what to do instead.
 */
export function checkOptimizedHeader(text: string, snapshots: readonly string[]): void {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw badRequest(`Invalid backup: ${OPTIMIZED_HEADER} is not YAML (${(e as Error).message})`);
  }
  const subs = (doc as { subvolumes?: unknown } | null)?.subvolumes;
  if (!Array.isArray(subs)) throw badRequest(`Invalid backup: ${OPTIMIZED_HEADER} has no subvolumes list`);
  const roots: string[] = [];
  for (const s of subs as Partial<Subvolume>[]) {
    const snapshot = typeof s?.snapshot === "string" ? s.snapshot : "";
    if (s?.path !== "/")
      throw badRequest(
        `The backup holds a nested btrfs subvolume (${String(s?.path)} of ${snapshot ? `snapshot "${snapshot}"` : "the instance"}), ` +
          "which this server cannot restore from an optimized backup; export the instance without --optimized-storage",
      );
    roots.push(snapshot);
  }
  const want = [...snapshots, ""];
  if (roots.length !== want.length || want.some((w) => !roots.includes(w)))
    throw badRequest(`Invalid backup: ${OPTIMIZED_HEADER} does not list the instance and exactly the snapshots of backup/index.yaml`);
}
