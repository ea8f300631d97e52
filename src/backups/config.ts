/**
 * LXD's backup description, as LXD 5.0.2 writes it for a dir pool: backup.yaml inside the
 * instance volume (what LXD keeps there at all times, and what its importer reads to make the
 * instance), and backup/index.yaml at the head of the tarball (the same config, plus what the
 * importer needs before unpacking: name, backend, pool, snapshot names, optimized).
 */
import { parse as parseYaml, stringify } from "yaml";
import { badRequest } from "../api/errors.js";
import type { Instance, InstancePut } from "../api/instance.js";

/** Go's zero time, which LXD writes for "no expiry" and unknown dates. */
export const GO_ZERO_TIME = "0001-01-01T00:00:00Z";

/** The instance as backup.yaml holds it: the API object without state, snapshots and backups. */
export type BackupInstance = Instance;

export interface BackupSnapshot extends Omit<BackupInstance, "status" | "status_code" | "location" | "project" | "type"> {
  expires_at: string;
  size: number;
}

export interface BackupConfig {
  container: BackupInstance;
  snapshots: BackupSnapshot[];
  pool: { name: string; driver: string; description: string; config: Record<string, string>; used_by: string[]; status: string; locations: string[] };
  profiles?: { name: string; description: string; config: Record<string, string>; devices: Record<string, Record<string, string>>; used_by: string[] }[];
  volume: {
    name: string;
    type: string;
    description: string;
    config: Record<string, string>;
    used_by: string[];
    location: string;
    content_type: string;
    project: string;
    created_at: string;
  };
  volume_snapshots?: { name: string; description: string; expires_at: string; config: Record<string, string>; content_type: string; created_at: string }[];
}

export interface BackupIndex {
  name: string;
  backend: string;
  pool: string;
  snapshots: string[];
  optimized: boolean;
  optimized_header: boolean;
  type: string;
  config: BackupConfig;
}

export function backupYaml(config: BackupConfig): string {
  return stringify(config, { lineWidth: 0 });
}

export function indexYaml(index: BackupIndex): string {
  return stringify(index, { lineWidth: 0 });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** String maps (config, devices) as YAML may spell them: numbers and booleans become strings. */
function stringMap(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw badRequest(`Invalid backup: ${what} must be a map`);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (isObject(x) || Array.isArray(x)) throw badRequest(`Invalid backup: ${what}.${k} must be a string`);
    out[k] = x === null ? "" : String(x);
  }
  return out;
}

/** What an import needs of index.yaml, checked: a malformed or incomplete index is refused. */
export interface ParsedIndex {
  name: string;
  pool: string;
  backend: string;
  type: string;
  optimized: boolean;
  snapshots: string[];
  optimizedHeader: boolean;
  /**
   * The embedded backup.yaml (LXD 4.x and later write it; an optimized backup has no other),
   * parsed when asked: a backup of trees is described by its own backup.yaml.
   */
  config(): ParsedBackupConfig | undefined;
}

export interface ParsedBackupConfig {
  container: ParsedInstance;
  snapshots: ParsedSnapshot[];
}

export interface ParsedInstance extends InstancePut {
  name: string;
  created_at?: string;
  type: string;
}

export function parseIndex(text: string): ParsedIndex {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw badRequest(`Invalid backup: backup/index.yaml is not YAML (${(e as Error).message})`);
  }
  if (!isObject(doc)) throw badRequest("Invalid backup: backup/index.yaml is not a map");
  const name = doc.name;
  if (typeof name !== "string" || name === "") throw badRequest("Invalid backup: backup/index.yaml has no instance name");
  const snapshots = doc.snapshots ?? [];
  if (!Array.isArray(snapshots) || snapshots.some((s) => typeof s !== "string" || s === "" || s.includes("/")))
    throw badRequest("Invalid backup: backup/index.yaml's snapshots must be a list of names");
  const config = isObject(doc.config) ? doc.config : undefined;
  return {
    name,
    pool: typeof doc.pool === "string" ? doc.pool : "",
    backend: typeof doc.backend === "string" ? doc.backend : "",
    type: typeof doc.type === "string" && doc.type ? doc.type : "container",
    optimized: doc.optimized === true,
    snapshots: snapshots as string[],
    optimizedHeader: doc.optimized_header === true,
    config: () => (config && isObject(config.container) ? parseBackupDoc(config, "backup/index.yaml") : undefined),
  };
}

/** A snapshot as backup.yaml records it (for the snapshots service to restore). */
export interface ParsedSnapshot extends Omit<ParsedInstance, "type"> {
  expires_at: string;
  last_used_at?: string;
}

export function parseBackupYaml(text: string): ParsedBackupConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw badRequest(`Invalid backup: backup.yaml is not YAML (${(e as Error).message})`);
  }
  return parseBackupDoc(doc, "backup/container/backup.yaml");
}

/** backup.yaml's content (or index.yaml's `config`): the instance and its snapshots. */
function parseBackupDoc(doc: unknown, file: string): ParsedBackupConfig {
  if (!isObject(doc) || !isObject(doc.container)) throw badRequest(`Invalid backup: ${file} has no instance (container:)`);
  const snaps = Array.isArray(doc.snapshots) ? doc.snapshots : [];
  return {
    container: parseInstance(doc.container, file),
    snapshots: snaps.map((x, i) => {
      if (!isObject(x)) throw badRequest(`Invalid backup: ${file}'s snapshot ${i + 1} is not a map`);
      const { type: _type, ...rest } = parseInstance(x, `${file} (snapshot ${i + 1})`);
      return {
        ...rest,
        expires_at: typeof x.expires_at === "string" ? x.expires_at : GO_ZERO_TIME,
        last_used_at: typeof x.last_used_at === "string" ? x.last_used_at : undefined,
      };
    }),
  };
}

function parseInstance(c: Record<string, unknown>, file: string): ParsedInstance {
  if (typeof c.name !== "string" || c.name === "") throw badRequest(`Invalid backup: ${file} names no instance`);
  const devices: Record<string, Record<string, string>> = {};
  if (c.devices !== undefined && c.devices !== null) {
    if (!isObject(c.devices)) throw badRequest(`Invalid backup: ${file}: devices must be a map`);
    for (const [k, d] of Object.entries(c.devices)) devices[k] = stringMap(d, `devices.${k}`);
  }
  const profiles = c.profiles ?? [];
  if (!Array.isArray(profiles) || profiles.some((p) => typeof p !== "string")) throw badRequest(`Invalid backup: ${file}: profiles must be a list of names`);
  return {
    name: c.name,
    architecture: typeof c.architecture === "string" && c.architecture ? c.architecture : "x86_64",
    description: typeof c.description === "string" ? c.description : "",
    config: stringMap(c.config, "config"),
    devices,
    profiles: profiles as string[],
    ephemeral: c.ephemeral === true,
    stateful: c.stateful === true,
    created_at: typeof c.created_at === "string" ? c.created_at : undefined,
    type: typeof c.type === "string" && c.type ? c.type : "container",
  };
}
