/**
 * The preseed of `lodge init --preseed` and `--dump`: LXD's shape (`config`, `networks`,
 * `storage_pools`, `profiles`), read from YAML with every field checked, and the server's
 * current state written back in the same shape. Pure but for loading the yaml module.
 */
import type { Profile } from "../api/profile.js";
import { UsageError } from "./exit.js";
import type { Network } from "./network-types.js";
import type { StoragePool } from "./storage-types.js";
import { loadYaml } from "./yaml.js";

type Strings = Record<string, string>;

export interface PreseedNetwork {
  name: string;
  type?: string;
  description?: string;
  config?: Strings;
  /** Only "default": Lodge has no other project yet. */
  project?: string;
}

export interface PreseedStoragePool {
  name: string;
  driver?: string;
  description?: string;
  config?: Strings;
}

export interface PreseedProfile {
  name: string;
  description?: string;
  config?: Strings;
  devices?: Record<string, Strings>;
}

export interface Preseed {
  config?: Strings;
  networks?: PreseedNetwork[];
  storage_pools?: PreseedStoragePool[];
  profiles?: PreseedProfile[];
}

/** The one pool a server without /1.0/storage-pools has: the default profile's root disk is on it. */
export const IMPLICIT_POOL: StoragePool = { name: "default", driver: "dir", description: "", config: {} };

const SECTIONS = ["config", "networks", "storage_pools", "profiles", "projects", "cluster"];

/** Parses and checks a preseed; anything Lodge cannot apply is refused here, naming it. */
export async function parsePreseed(text: string): Promise<Preseed> {
  let doc: unknown;
  try {
    doc = (await loadYaml()).parse(text);
  } catch (e) {
    throw new UsageError(`Invalid preseed YAML: ${(e as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  const top = map(doc, "preseed");
  for (const k of Object.keys(top)) if (!SECTIONS.includes(k)) throw new UsageError(`Invalid preseed: unknown section "${k}" (sections: config, networks, storage_pools, profiles)`);
  if (!isEmpty(top.projects)) throw new UsageError("Preseed: projects are not supported yet (Lodge has only the default project): remove the projects section");
  if (!isEmpty(top.cluster)) throw new UsageError("Preseed: clustering is not supported yet: remove the cluster section");
  const out: Preseed = {};
  if (!isEmpty(top.config)) out.config = strings(top.config, "preseed config");
  if (present(top.networks)) {
    out.networks = entries(top.networks, "networks", ["name", "type", "description", "config", "project"], (m, where) => {
      const n: PreseedNetwork = { name: name(m, where) };
      if (m.type !== undefined && m.type !== null) n.type = String(m.type);
      if (m.description !== undefined && m.description !== null) n.description = String(m.description);
      if (!isEmpty(m.config)) n.config = strings(m.config, `${where} config`);
      if (m.project !== undefined && m.project !== null && String(m.project) !== "default")
        throw new UsageError(`Preseed: ${where} is in project "${m.project}": projects are not supported yet, only "default"`);
      return n;
    });
  }
  if (present(top.storage_pools)) {
    out.storage_pools = entries(top.storage_pools, "storage_pools", ["name", "driver", "description", "config"], (m, where) => {
      const p: PreseedStoragePool = { name: name(m, where) };
      if (m.driver !== undefined && m.driver !== null) p.driver = String(m.driver);
      if (m.description !== undefined && m.description !== null) p.description = String(m.description);
      if (!isEmpty(m.config)) p.config = strings(m.config, `${where} config`);
      return p;
    });
  }
  if (present(top.profiles)) {
    out.profiles = entries(top.profiles, "profiles", ["name", "description", "config", "devices"], (m, where) => {
      const p: PreseedProfile = { name: name(m, where) };
      if (m.description !== undefined && m.description !== null) p.description = String(m.description);
      if (!isEmpty(m.config)) p.config = strings(m.config, `${where} config`);
      if (!isEmpty(m.devices)) {
        p.devices = Object.fromEntries(Object.entries(map(m.devices, `${where} devices`)).map(([dev, d]) => [dev, strings(d, `${where} device "${dev}"`)]));
      }
      return p;
    });
  }
  return out;
}

/** What `init --dump` prints: managed networks, the storage pools, profiles and server config. */
export function dumpPreseed(config: Strings, networks: readonly Network[], pools: readonly StoragePool[] | undefined, profiles: readonly Profile[]): Preseed & { networks: PreseedNetwork[] } {
  const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return {
    config: { ...config },
    networks: networks
      .filter((n) => n.managed)
      .sort(byName)
      .map((n) => ({ config: { ...n.config }, description: n.description ?? "", name: n.name, type: n.type, project: "default" })),
    storage_pools: (pools ?? [IMPLICIT_POOL]).slice().sort(byName).map((p) => ({ config: { ...p.config }, description: p.description ?? "", name: p.name, driver: p.driver })),
    profiles: profiles
      .slice()
      .sort(byName)
      .map((p) => ({ config: { ...p.config }, description: p.description ?? "", devices: structuredClone(p.devices ?? {}), name: p.name })),
  };
}

const present = (v: unknown) => v !== undefined && v !== null;

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === "object" && Object.keys(v).length === 0;
}

function map(v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new UsageError(`Invalid preseed: ${what} must be a map`);
  return v as Record<string, unknown>;
}

/** A map of config values as strings: YAML's true and 10 are "true" and "10", as LXD takes them. */
function strings(v: unknown, what: string): Strings {
  const out: Strings = {};
  for (const [k, x] of Object.entries(map(v, what))) {
    if (x !== null && typeof x === "object") throw new UsageError(`Invalid preseed: ${what} key "${k}" must be a plain value`);
    out[k] = x === null ? "" : String(x);
  }
  return out;
}

function name(m: Record<string, unknown>, where: string): string {
  if (typeof m.name !== "string" || m.name === "") throw new UsageError(`Invalid preseed: ${where} has no name`);
  return m.name;
}

function entries<T extends { name: string }>(v: unknown, section: string, fields: string[], read: (m: Record<string, unknown>, where: string) => T): T[] {
  if (!Array.isArray(v)) throw new UsageError(`Invalid preseed: ${section} must be a list`);
  const seen = new Set<string>();
  return v.map((item, n) => {
    const m = map(item, `${section} entry ${n + 1}`);
    const where = typeof m.name === "string" && m.name ? `${singular(section)} "${m.name}"` : `${section} entry ${n + 1}`;
    for (const k of Object.keys(m)) if (!fields.includes(k)) throw new UsageError(`Invalid preseed: ${where} has unknown field "${k}" (fields: ${fields.join(", ")})`);
    const e = read(m, where);
    if (seen.has(e.name)) throw new UsageError(`Invalid preseed: ${where} is given twice`);
    seen.add(e.name);
    return e;
  });
}

const singular = (section: string) => ({ networks: "network", storage_pools: "storage pool", profiles: "profile" })[section] ?? section;
