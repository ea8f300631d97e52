/**
 * User-namespace id maps for unprivileged containers, with LXD's semantics.
 *
 * - The host pool is root's first range of at least 65536 ids in /etc/subuid and /etc/subgid.
 *   When root has no entry there (or the files are missing), the pool comes from the kernel's
 *   own map: on a host that owns the full id space that is LXD's fallback, 1000000 + 10^9.
 * - By default every container shares one map: the whole pool, nsid 0 → pool start.
 * - `security.idmap.isolated=true` gives an instance its own range (default 65536 ids,
 *   `security.idmap.size`), placed in the first gap after the pool's first 65536 ids that no
 *   other isolated instance uses, or at `security.idmap.base` when set.
 *
 * Everything here is pure except readHostPool, which reads the three files.
 */
import { readFile } from "node:fs/promises";

export interface IdRange {
  /** First host id. */
  hostid: number;
  /** Number of ids. */
  range: number;
}

/** One line of a map: `range` ids from `nsid` inside map to `hostid` outside. */
export interface IdmapEntry extends IdRange {
  kind: "u" | "g";
  nsid: number;
}

export interface HostIdPool {
  uid: IdRange;
  gid: IdRange;
  /** subid: root's entries in /etc/subuid and /etc/subgid; kernel: derived from /proc/self/{u,g}id_map. */
  source: "subid" | "kernel";
}

export interface IdmapConfig {
  isolated: boolean;
  base?: number;
  size?: number;
}

export interface Allocation {
  entries: IdmapEntry[];
  /** volatile.idmap.base: the host id of nsid 0 for an isolated map, 0 for the shared one (as LXD). */
  base: number;
}

export class IdmapError extends Error {
  override name = "IdmapError";
}

/** The size below which a range is useless: POSIX ids up to nobody (65534). */
export const MIN_RANGE = 65536;
const FALLBACK: IdRange = { hostid: 1_000_000, range: 1_000_000_000 };
const FULL_KERNEL_RANGE = 4294967295;

/** Ranges of `user` in /etc/subuid or /etc/subgid text (`name:start:count`, `#` comments). */
export function parseSubid(text: string, user = "root"): IdRange[] {
  const out: IdRange[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.split("#")[0]!.trim();
    if (!line) continue;
    const [name, start, count] = line.split(":");
    if (name !== user || start === undefined || count === undefined) continue;
    const hostid = Number(start);
    const range = Number(count);
    if (Number.isSafeInteger(hostid) && Number.isSafeInteger(range) && hostid >= 0 && range > 0) out.push({ hostid, range });
  }
  return out;
}

/** Lines of /proc/<pid>/uid_map or gid_map: `nsid hostid range`. */
export function parseProcIdmap(text: string): { nsid: number; hostid: number; range: number }[] {
  return text
    .split("\n")
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter((f) => f.length === 3 && f.every(Number.isSafeInteger))
    .map(([nsid, hostid, range]) => ({ nsid: nsid!, hostid: hostid!, range: range! }));
}

/** A usable range from the kernel map: above the first 100000 host ids, at least 65536 long. */
function fromKernel(map: { nsid: number; hostid: number; range: number }[]): IdRange | undefined {
  if (map.length === 1 && map[0]!.nsid === 0 && map[0]!.range === FULL_KERNEL_RANGE) return FALLBACK;
  for (const e of map) {
    // Ids are usable in terms of this namespace (nsid); keep clear of the system's own ids.
    const start = Math.max(e.nsid, 100_000);
    const end = e.nsid + e.range;
    if (end - start >= MIN_RANGE) return { hostid: start, range: end - start };
  }
  return undefined;
}

export interface PoolInputs {
  /** Text of /etc/subuid and /etc/subgid; undefined when the file is missing. */
  subuid?: string;
  subgid?: string;
  /** Text of /proc/self/uid_map and gid_map. */
  uidMap: string;
  gidMap: string;
  user?: string;
}

/** The host's id pool for containers (see the module comment), or an IdmapError saying why none. */
export function hostPool(inputs: PoolInputs): HostIdPool {
  const user = inputs.user ?? "root";
  if (inputs.subuid !== undefined && inputs.subgid !== undefined) {
    const uid = parseSubid(inputs.subuid, user).find((r) => r.range >= MIN_RANGE);
    const gid = parseSubid(inputs.subgid, user).find((r) => r.range >= MIN_RANGE);
    if (uid && gid) return { uid, gid, source: "subid" };
    const any = parseSubid(inputs.subuid, user).length + parseSubid(inputs.subgid, user).length;
    if (any > 0) throw new IdmapError(`${user}'s ranges in /etc/subuid and /etc/subgid must each hold at least ${MIN_RANGE} ids`);
  }
  const uid = fromKernel(parseProcIdmap(inputs.uidMap));
  const gid = fromKernel(parseProcIdmap(inputs.gidMap));
  if (!uid || !gid) throw new IdmapError(`no range of ${MIN_RANGE} ids is available for unprivileged containers (nested too deep?)`);
  return { uid, gid, source: "kernel" };
}

/** Reads the host pool from /etc/subuid, /etc/subgid and this process's id maps. */
export async function readHostPool(): Promise<HostIdPool> {
  const opt = (p: string) => readFile(p, "utf8").catch(() => undefined);
  const [subuid, subgid, uidMap, gidMap] = await Promise.all([
    opt("/etc/subuid"),
    opt("/etc/subgid"),
    readFile("/proc/self/uid_map", "utf8"),
    readFile("/proc/self/gid_map", "utf8"),
  ]);
  return hostPool({ subuid, subgid, uidMap, gidMap });
}

function parseId(key: string, value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new IdmapError(`${key}: "${value}" is not a non-negative integer`);
  const n = Number(value.trim());
  if (!Number.isSafeInteger(n) || n > 0xffffffff) throw new IdmapError(`${key}: ${value} is out of range`);
  return n;
}

/** security.idmap.{isolated,base,size} from an instance's (expanded) config. */
export function idmapConfig(config: Readonly<Record<string, string | undefined>>): IdmapConfig {
  const isolated = /^(true|1|yes|on)$/i.test(config["security.idmap.isolated"] ?? "");
  const base = config["security.idmap.base"];
  const size = config["security.idmap.size"];
  const out: IdmapConfig = { isolated };
  if (base !== undefined && base !== "") out.base = parseId("security.idmap.base", base);
  if (size !== undefined && size !== "" && size !== "auto") {
    out.size = parseId("security.idmap.size", size);
    if (out.size < MIN_RANGE) throw new IdmapError(`security.idmap.size: ${out.size} is smaller than ${MIN_RANGE}`);
  }
  return out;
}

const end = (r: IdRange) => r.hostid + r.range;
const within = (r: IdRange, pool: IdRange) => r.hostid >= pool.hostid && end(r) <= end(pool);

function entriesFor(uid: IdRange, gid: IdRange): IdmapEntry[] {
  return [
    { kind: "u", nsid: 0, ...uid },
    { kind: "g", nsid: 0, ...gid },
  ];
}

/**
 * The map for one instance. `taken` are the ranges of the other isolated instances
 * (their volatile.idmap.base and size); the shared map ignores them, as in LXD.
 */
export function allocateIdmap(pool: HostIdPool, cfg: IdmapConfig, taken: readonly IdRange[] = []): Allocation {
  if (!cfg.isolated) return { entries: entriesFor(pool.uid, pool.gid), base: 0 };
  const size = cfg.size ?? MIN_RANGE;
  const fits = (hostid: number) => within({ hostid, range: size }, pool.uid) && within({ hostid, range: size }, pool.gid);
  if (cfg.base !== undefined) {
    if (!fits(cfg.base)) {
      throw new IdmapError(
        `security.idmap.base ${cfg.base} with size ${size} lies outside the host's id pool ` +
          `(uids ${pool.uid.hostid}-${end(pool.uid) - 1}, gids ${pool.gid.hostid}-${end(pool.gid) - 1})`,
      );
    }
    const r = { hostid: cfg.base, range: size };
    return { entries: entriesFor(r, r), base: cfg.base };
  }
  // First gap after the pool's first 65536 ids (which the shared map's root and nobody use).
  let candidate = pool.uid.hostid + MIN_RANGE;
  for (const t of [...taken].sort((a, b) => a.hostid - b.hostid)) {
    if (candidate + size <= t.hostid) break;
    candidate = Math.max(candidate, end(t));
  }
  if (!fits(candidate)) throw new IdmapError(`not enough uids/gids left in the host's pool for an isolated map of ${size} ids`);
  const r = { hostid: candidate, range: size };
  return { entries: entriesFor(r, r), base: candidate };
}

/** liblxc's `lxc.idmap` values: `u 0 1000000 65536`. */
export function lxcIdmapLines(entries: readonly IdmapEntry[]): string[] {
  return entries.map((e) => `${e.kind} ${e.nsid} ${e.hostid} ${e.range}`);
}

/** The host id an id inside the namespace maps to, or undefined when unmapped. */
export function toHost(entries: readonly IdmapEntry[], kind: "u" | "g", nsid: number): number | undefined {
  for (const e of entries) if (e.kind === kind && nsid >= e.nsid && nsid < e.nsid + e.range) return e.hostid + (nsid - e.nsid);
  return undefined;
}

/** The id inside the namespace a host id maps to, or undefined when unmapped. */
export function toNs(entries: readonly IdmapEntry[], kind: "u" | "g", hostid: number): number | undefined {
  for (const e of entries) if (e.kind === kind && hostid >= e.hostid && hostid < e.hostid + e.range) return e.nsid + (hostid - e.hostid);
  return undefined;
}

/** LXD's JSON for volatile.idmap.* and volatile.last_state.idmap. */
export function idmapToJson(entries: readonly IdmapEntry[]): string {
  return JSON.stringify(
    entries.map((e) => ({ Isuid: e.kind === "u", Isgid: e.kind === "g", Hostid: e.hostid, Nsid: e.nsid, Maprange: e.range })),
  );
}

/** Parses LXD's idmap JSON (an entry may be both uid and gid). */
export function idmapFromJson(text: string): IdmapEntry[] {
  if (!text.trim()) return [];
  const raw = JSON.parse(text) as { Isuid?: boolean; Isgid?: boolean; Hostid: number; Nsid: number; Maprange: number }[];
  if (!Array.isArray(raw)) throw new IdmapError("idmap JSON must be an array");
  const out: IdmapEntry[] = [];
  for (const e of raw) {
    const base = { nsid: Number(e.Nsid), hostid: Number(e.Hostid), range: Number(e.Maprange) };
    if (![base.nsid, base.hostid, base.range].every(Number.isSafeInteger)) throw new IdmapError(`bad idmap entry ${JSON.stringify(e)}`);
    if (e.Isuid) out.push({ kind: "u", ...base });
    if (e.Isgid) out.push({ kind: "g", ...base });
  }
  return out;
}

/** Whether two maps are the same (order of entries aside). */
export function sameIdmap(a: readonly IdmapEntry[], b: readonly IdmapEntry[]): boolean {
  const key = (m: readonly IdmapEntry[]) => lxcIdmapLines(m).sort().join(",");
  return key(a) === key(b);
}
