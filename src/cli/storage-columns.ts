/**
 * What the storage verbs print, as lxc 5.0.2 prints it: the columns of `storage list` and
 * `storage volume list` (with `-c`), the maps of `storage info`, and the text of `storage
 * volume info`. Pure: unit-tested.
 */
import { UsageError } from "./exit.js";
import { naturalCompare } from "./network-columns.js";
import { renderTable, shortTime, type Column } from "./output.js";
import type { StoragePool, StoragePoolResources, StorageVolume, StorageVolumeSnapshot, StorageVolumeState } from "./storage-types.js";

export const POOL_COLUMNS: Column<StoragePool>[] = [
  { header: "NAME", value: (p) => p.name },
  { header: "DRIVER", value: (p) => p.driver },
  { header: "SOURCE", value: (p) => p.config?.source ?? "" },
  { header: "DESCRIPTION", value: (p) => p.description ?? "" },
  { header: "USED BY", value: (p) => String(p.used_by?.length ?? 0) },
  { header: "STATE", value: (p) => (p.status ?? "").toUpperCase() },
];

export const sortedPools = (all: readonly StoragePool[]): StoragePool[] => [...all].sort((a, b) => naturalCompare(a.name, b.name));

/** Bytes as lxc prints sizes of storage (binary units, two decimals): "1.50GiB". */
export function iecByteSize(n: number): string {
  if (n < 1024) return `${n}B`;
  let v = n;
  for (const unit of ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]) {
    v /= 1024;
    if (v < 1024) return `${v.toFixed(2)}${unit}`;
  }
  return `${v.toFixed(2)}EB`;
}

/** A volume row: the volume and, for the USAGE column only, its state. */
export interface VolumeRow {
  volume: StorageVolume;
  state?: StorageVolumeState;
}

const isSnapshot = (v: StorageVolume) => v.name.includes("/");

const VOLUME_COLUMN_CHARS: Record<string, Column<VolumeRow>> = {
  t: { header: "TYPE", value: ({ volume: v }) => (isSnapshot(v) ? `${v.type} (snapshot)` : v.type) },
  n: { header: "NAME", value: ({ volume: v }) => v.name },
  d: { header: "DESCRIPTION", value: ({ volume: v }) => v.description ?? "" },
  c: { header: "CONTENT-TYPE", value: ({ volume: v }) => v.content_type || "filesystem" },
  u: { header: "USED BY", value: ({ volume: v }) => String(v.used_by?.length ?? 0) },
  U: { header: "USAGE", value: ({ state }) => (state?.usage ? iecByteSize(state.usage.used) : "") },
};

/** lxc's default: project and location are dropped on a single server in one project. */
export const DEFAULT_VOLUME_COLUMNS = "etndcuL";

/** `-c` of `storage volume list`: shorthand characters, optionally split by commas. */
export function parseVolumeColumns(spec: string): { columns: Column<VolumeRow>[]; needsState: boolean } {
  if (spec !== DEFAULT_VOLUME_COLUMNS && spec.includes("L")) throw new UsageError("Can't specify column L when not clustered");
  if (spec !== DEFAULT_VOLUME_COLUMNS && spec.includes("e")) throw new UsageError("Can't specify column e: Lodge has only the default project");
  const columns: Column<VolumeRow>[] = [];
  let needsState = false;
  for (const entry of spec.replace(/[Le]/g, "").split(",")) {
    if (entry === "") throw new UsageError(`Empty column entry (redundant, leading or trailing comma) in '${spec}'`);
    for (const ch of entry) {
      const col = VOLUME_COLUMN_CHARS[ch];
      if (!col) throw new UsageError(`Unknown column shorthand char '${ch}' in '${entry}' (columns: t n d c u U)`);
      if (ch === "U") needsState = true;
      columns.push(col);
    }
  }
  return { columns, needsState };
}

/** Volumes as lxc orders them: by type, a volume's snapshots right after it, names naturally. */
export function sortedVolumes<T extends { volume: StorageVolume } | StorageVolume>(all: readonly T[]): T[] {
  const vol = (x: T): StorageVolume => ("volume" in x ? x.volume : x);
  return [...all].sort((a, b) => naturalCompare(vol(a).type, vol(b).type) || naturalCompare(vol(a).name, vol(b).name));
}

/** `KEY=VALUE` filters of `storage volume list`, matched against the volume's fields (config.KEY too). */
export function parseVolumeFilters(words: readonly string[]): [string, string][] {
  return words.map((w) => {
    const eq = w.indexOf("=");
    if (eq <= 0) throw new UsageError(`Invalid filter "${w}": expected KEY=VALUE, e.g. type=custom or config.size=1GiB`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

export function matchVolume(v: StorageVolume, filters: readonly [string, string][]): boolean {
  return filters.every(([key, want]) => {
    let at: unknown = v;
    for (const part of key.split(".")) at = at !== null && typeof at === "object" ? (at as Record<string, unknown>)[part] : undefined;
    // config keys hold dots themselves (config.block.filesystem): try the rest as one key too.
    if (at === undefined && key.startsWith("config.")) at = v.config?.[key.slice("config.".length)];
    return at !== undefined && at !== null && String(at) === want;
  });
}

/**
 * `storage info POOL`: lxc's two maps, "info" (name, driver, description, space, and here the
 * inodes when the server counts them) and "used by" (names grouped by kind). Keys in the order
 * lxc's YAML prints them (sorted).
 */
export function poolInfo(pool: StoragePool, res: StoragePoolResources, bytes: boolean): { info: Record<string, string>; "used by": Record<string, string[]> } {
  const size = (n: number) => (bytes ? String(n) : iecByteSize(n));
  const info: Record<string, string> = { description: pool.description ?? "", driver: pool.driver, name: pool.name };
  if (res.inodes && res.inodes.total > 0) {
    info["inodes used"] = String(res.inodes.used);
    info["total inodes"] = String(res.inodes.total);
  }
  info["space used"] = size(res.space.used ?? 0);
  info["total space"] = size(res.space.total);
  const sortedInfo = Object.fromEntries(Object.entries(info).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { info: sortedInfo, "used by": usedByGroups(pool.used_by ?? []) };
}

/** `/1.0/instances/c1?project=p` → instances: [`c1 (project "p")`]; volumes by their name (snapshots as VOLUME/SNAP). */
export function usedByGroups(urls: readonly string[]): Record<string, string[]> {
  const groups: Record<string, string[]> = {};
  for (const u of urls) {
    let parsed: URL;
    try {
      parsed = new URL(u, "http://lodge");
    } catch {
      continue;
    }
    const fields = parsed.pathname.replace(/^\/1\.0\//, "").split("/").map((f) => decodeURIComponent(f));
    let kind = fields[0] ?? "";
    let name = fields[1] ?? "";
    if (kind === "storage-pools") {
      // …/volumes/<type>/<name>[/snapshots/<snap>]: a snapshot as volume/snap, as volume list names it.
      kind = "volumes";
      name = fields[5] === "snapshots" ? `${fields[4]}/${fields[6] ?? ""}` : (fields[4] ?? "");
    }
    const extra = [parsed.searchParams.get("project"), parsed.searchParams.get("target")]
      .map((v, i) => (v ? `${i === 0 ? "project" : "target"} "${v}"` : ""))
      .filter(Boolean)
      .join(", ");
    (groups[kind] ??= []).push(extra ? `${name} (${extra})` : name);
  }
  return Object.fromEntries(Object.entries(groups).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** The text of `storage volume info POOL VOLUME`, as lxc prints it. */
export function volumeInfo(v: StorageVolume, state: StorageVolumeState | undefined, snapshots: readonly StorageVolumeSnapshot[]): string {
  const lines = [`Name: ${v.name}`];
  if (v.description) lines.push(`Description: ${v.description}`);
  lines.push(`Type: ${v.type || "custom"}`, `Content type: ${v.content_type || "filesystem"}`);
  if (state?.usage) {
    lines.push(`Usage: ${iecByteSize(state.usage.used)}`);
    if ((state.usage.total ?? 0) > 0) lines.push(`Total: ${iecByteSize(state.usage.total!)}`);
  }
  let out = lines.join("\n") + "\n";
  if (snapshots.length) {
    const rows = snapshots.map((s) => [s.name.split("/").pop()!, s.description ?? "", (s.expires_at && shortTime(s.expires_at)) || " "]);
    rows.sort((a, b) => naturalCompare(a[0]!, b[0]!));
    out += "\nSnapshots:\n" + renderTable(["Name", "Description", "Expires at"], rows);
  }
  return out;
}
