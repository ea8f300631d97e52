/**
 * `lodge list`'s columns and filters, as lxc has them. Columns are shorthand letters ("ns46tS")
 * or comma-separated specs, where a spec with a "." is a config key column
 * (`user.role[:HEADER]`, or `config:KEY[:HEADER]`). Filters are `key=value` on the expanded
 * config (dotted keys may be abbreviated per part, values are anchored regexps), a few
 * field shorthands (`status=`, `type=`, `name=`…), or words matched against the name (anchored
 * regexp, else a prefix). Pure: unit-tested.
 */
import type { InstanceFull, InstanceStateNetwork } from "../api/instance.js";
import { UsageError } from "./exit.js";
import { shortTime, type Column } from "./output.js";

export const DEFAULT_INSTANCE_COLUMNS = "ns46tS";

type Cell = (i: InstanceFull) => string;

const SHORTHANDS: Record<string, { header: string; value: Cell }> = {
  n: { header: "NAME", value: (i) => i.name },
  s: { header: "STATE", value: (i) => (i.state?.status ?? i.status).toUpperCase() },
  "4": { header: "IPV4", value: (i) => addresses(i.state?.network ?? null, "inet") },
  "6": { header: "IPV6", value: (i) => addresses(i.state?.network ?? null, "inet6") },
  t: { header: "TYPE", value: (i) => i.type.toUpperCase() + (i.ephemeral ? " (EPHEMERAL)" : "") },
  S: { header: "SNAPSHOTS", value: (i) => String(i.snapshots?.length ?? 0) },
  a: { header: "ARCHITECTURE", value: (i) => i.architecture },
  b: { header: "STORAGE POOL", value: (i) => i.expanded_devices?.root?.pool ?? "" },
  c: { header: "CREATED AT", value: (i) => shortTime(i.created_at) },
  d: { header: "DESCRIPTION", value: (i) => i.description },
  D: { header: "DISK USAGE", value: (i) => diskUsage(i) },
  e: { header: "PROJECT", value: (i) => i.project },
  l: { header: "LAST USED AT", value: (i) => shortTime(i.last_used_at) },
  L: { header: "LOCATION", value: (i) => i.location },
  m: { header: "MEMORY USAGE", value: (i) => (running(i) ? byteSize(i.state!.memory.usage) : "") },
  N: { header: "PROCESSES", value: (i) => (running(i) ? String(i.state!.processes) : "") },
  p: { header: "PID", value: (i) => (running(i) && i.state!.pid > 0 ? String(i.state!.pid) : "") },
  P: { header: "PROFILES", value: (i) => i.profiles.join("\n") },
  u: { header: "CPU USAGE", value: (i) => (running(i) ? `${Math.floor(i.state!.cpu.usage / 1e9)}s` : "") },
};

export const COLUMN_HELP =
  "Columns: n name, s state, 4 IPv4, 6 IPv6, t type, S snapshots, a architecture, b storage pool, c created, " +
  "d description, D disk usage, e project, l last used, L location, m memory, N processes, p PID, P profiles, " +
  "u CPU time; or config keys, comma-separated: -c n,user.role:ROLE";

const running = (i: InstanceFull) => !!i.state && i.state.status !== "Stopped" && i.state.pid > 0;

/** Parses a column spec into columns; an unknown letter is a usage error naming it. */
export function parseColumns(spec: string): Column<InstanceFull>[] {
  const out: Column<InstanceFull>[] = [];
  const parts = spec.includes(",") ? spec.split(",") : [spec];
  for (const part of parts) {
    if (part === "") throw new UsageError(`Invalid columns "${spec}": an empty column`);
    if (part.includes(".") || part.startsWith("config:")) {
      out.push(configColumn(part));
      continue;
    }
    for (const ch of part) {
      const col = SHORTHANDS[ch];
      if (!col) throw new UsageError(`Unknown column shorthand "${ch}" in "${spec}" (${COLUMN_HELP})`);
      out.push(col);
    }
  }
  return out;
}

/** `user.role`, `user.role:ROLE`, `config:limits.cpu[:CPUS]`: a column of an expanded config key. */
function configColumn(part: string): Column<InstanceFull> {
  const body = part.startsWith("config:") ? part.slice("config:".length) : part;
  const [key = "", header] = body.split(":");
  if (!key) throw new UsageError(`Invalid column "${part}": no config key`);
  return { header: header || key.toUpperCase(), value: (i) => i.expanded_config?.[key] ?? i.config?.[key] ?? "" };
}

/**
 * lxc's address cells: one "ADDRESS (IFACE)" per line, loopback and link-local left out,
 * sorted the way lxc sorts them (descending).
 */
export function addresses(network: Record<string, InstanceStateNetwork> | null, family: "inet" | "inet6"): string {
  if (!network) return "";
  const out: string[] = [];
  for (const [iface, net] of Object.entries(network)) {
    if (iface === "lo" || net.type === "loopback") continue;
    for (const a of net.addresses ?? []) if (a.family === family && a.scope !== "link" && a.scope !== "local") out.push(`${a.address} (${iface})`);
  }
  return out.sort().reverse().join("\n");
}

function diskUsage(i: InstanceFull): string {
  const root = i.state?.disk?.root?.usage;
  return root === undefined ? "" : byteSize(root);
}

/** Bytes as lxc prints them: "12.34MiB". */
export function byteSize(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v}B` : `${v.toFixed(2)}${units[u]}`;
}

/** One `lodge list` filter word, parsed. */
type FilterField = "status" | "type" | "name" | "architecture" | "location" | "project";

export type ListFilter =
  | { kind: "name"; pattern: string }
  | { kind: "field"; field: FilterField; value: string }
  | { kind: "config"; key: string; value: string };

const FIELD_SHORTHANDS = new Set(["status", "state", "type", "name", "architecture", "location", "project"]);

export function parseListFilters(words: readonly string[]): ListFilter[] {
  return words.map((w): ListFilter => {
    const eq = w.indexOf("=");
    if (eq === -1) return { kind: "name", pattern: w };
    const key = w.slice(0, eq);
    const value = w.slice(eq + 1);
    if (!key) throw new UsageError(`Invalid filter "${w}": expected KEY=VALUE or a name`);
    if (FIELD_SHORTHANDS.has(key))
      return { kind: "field", field: key === "state" ? "status" : (key as FilterField), value };
    return { kind: "config", key, value };
  });
}

/** Every filter must hold (lxc ANDs them). */
export function matchListFilters(i: InstanceFull, filters: readonly ListFilter[]): boolean {
  return filters.every((f) => matchOne(i, f));
}

function matchOne(i: InstanceFull, f: ListFilter): boolean {
  switch (f.kind) {
    case "name":
      return anchored(f.pattern)?.test(i.name) || i.name.startsWith(f.pattern);
    case "field": {
      const actual = f.field === "status" ? (i.state?.status ?? i.status) : String(i[f.field] ?? "");
      // Case-insensitive for status and type, so `status=running` and `type=container` work.
      const ci = f.field === "status" || f.field === "type";
      return valueMatches(ci ? f.value.toLowerCase() : f.value, ci ? actual.toLowerCase() : actual);
    }
    case "config": {
      const config = i.expanded_config ?? i.config ?? {};
      if (config[f.key] === f.value) return true;
      for (const [k, v] of Object.entries(config)) if (dotPrefixMatch(f.key, k) && valueMatches(f.value, v)) return true;
      return false;
    }
  }
}

/** A value filter is an anchored regexp (unless it anchors itself); if it isn't one, equality. */
function valueMatches(pattern: string, actual: string): boolean {
  const re = anchored(pattern);
  return re ? re.test(actual) : pattern === actual;
}

function anchored(pattern: string): RegExp | undefined {
  try {
    return new RegExp(pattern.includes("^") || pattern.includes("$") ? pattern : `^(?:${pattern})$`);
  } catch {
    return undefined;
  }
}

/** lxc's abbreviation of dotted keys: every part of `short` prefixes the same part of `full`. */
export function dotPrefixMatch(short: string, full: string): boolean {
  const s = short.split(".");
  const f = full.split(".");
  if (s.length !== f.length) return false;
  return s.every((part, n) => f[n]!.startsWith(part));
}
