/**
 * `lodge init` as a plan: the server's current state (only the entities named) against a
 * preseed gives the steps that make them match, as LXD's preseed does: what is missing is
 * created, what differs is updated (config keys and device keys merged into what is there),
 * what is equal is left alone, so a second run plans nothing. `--auto` is a preseed too.
 * Pure: unit-tested.
 */
import type { Profile } from "../api/profile.js";
import { UsageError } from "./exit.js";
import { IMPLICIT_POOL, type Preseed, type PreseedNetwork, type PreseedProfile, type PreseedStoragePool } from "./init-preseed.js";
import type { Network } from "./network-types.js";
import type { StoragePool } from "./storage-types.js";

type Strings = Record<string, string>;

export interface Etagged<T> {
  value: T;
  etag?: string;
}

/** The server's state as far as a preseed touches it. */
export interface Current {
  config: Strings;
  configEtag?: string;
  /** Absent: the server has no /1.0/storage-pools (one implicit pool "default", driver dir). */
  pools?: Map<string, Etagged<StoragePool>>;
  networks: Map<string, Etagged<Network>>;
  profiles: Map<string, Etagged<Profile>>;
}

export type Step =
  | { kind: "config"; what: string; set: Strings; previous: Strings; etag?: string }
  | { kind: "create"; what: string; collection: string; url: string; body: object }
  | { kind: "update"; what: string; url: string; body: object; previous: object; etag?: string };

const enc = encodeURIComponent;

/** The steps that bring the server to the preseed: config, storage pools, networks, profiles. */
export function planPreseed(p: Preseed, cur: Current): Step[] {
  const steps: Step[] = [];
  const config = configStep(p.config ?? {}, cur);
  if (config) steps.push(config);
  for (const pool of p.storage_pools ?? []) steps.push(...poolSteps(pool, cur));
  for (const n of p.networks ?? []) steps.push(...networkSteps(n, cur));
  for (const prof of p.profiles ?? []) steps.push(...profileSteps(prof, cur));
  return steps;
}

function configStep(want: Strings, cur: Current): Step | undefined {
  const set: Strings = {};
  const previous: Strings = {};
  for (const [k, v] of Object.entries(want)) {
    if ((cur.config[k] ?? "") === v) continue;
    set[k] = v;
    previous[k] = cur.config[k] ?? "";
  }
  if (Object.keys(set).length === 0) return undefined;
  return { kind: "config", what: "the server config", set, previous, etag: cur.configEtag };
}

function poolSteps(want: PreseedStoragePool, cur: Current): Step[] {
  const what = `storage pool "${want.name}"`;
  if (!cur.pools) {
    // No storage pool API yet: only the implicit pool can be asked for, as it is.
    const plain = (want.driver ?? "dir") === "dir" && !want.description && Object.keys(want.config ?? {}).length === 0;
    if (want.name === IMPLICIT_POOL.name && plain) return [];
    throw new UsageError(
      `Cannot set up ${what}${want.driver ? ` (driver ${want.driver})` : ""}: this server has no storage pool API yet, only its implicit pool "default" (driver dir), which cannot be configured`,
    );
  }
  const url = `/1.0/storage-pools/${enc(want.name)}`;
  const have = cur.pools.get(want.name);
  if (!have) {
    if (!want.driver) throw new UsageError(`Cannot create ${what}: it has no driver (e.g. driver: dir)`);
    return [{ kind: "create", what, collection: "/1.0/storage-pools", url, body: { name: want.name, driver: want.driver, description: want.description ?? "", config: { ...want.config } } }];
  }
  if (want.driver && want.driver !== have.value.driver) throw new UsageError(`The existing ${what} has driver "${have.value.driver}", not "${want.driver}"`);
  const previous = { description: have.value.description ?? "", config: { ...have.value.config } };
  const body = { description: want.description || previous.description, config: { ...previous.config, ...want.config } };
  return same(body, previous) ? [] : [{ kind: "update", what, url, body, previous, etag: have.etag }];
}

function networkSteps(want: PreseedNetwork, cur: Current): Step[] {
  const what = `network "${want.name}"`;
  const url = `/1.0/networks/${enc(want.name)}`;
  const have = cur.networks.get(want.name);
  if (!have) {
    return [{ kind: "create", what, collection: "/1.0/networks", url, body: { name: want.name, type: want.type ?? "bridge", description: want.description ?? "", config: { ...want.config } } }];
  }
  if (!have.value.managed) throw new UsageError(`Cannot set up ${what}: an interface of that name exists on the host and is not managed by Lodge`);
  if (want.type && want.type !== have.value.type) throw new UsageError(`The existing ${what} has type "${have.value.type}", not "${want.type}"`);
  const previous = { description: have.value.description ?? "", config: { ...have.value.config } };
  const config = { ...previous.config };
  for (const [k, v] of Object.entries(want.config ?? {})) {
    // "auto" asks for a subnet to be picked: one that was picked (or given) satisfies it. Putting
    // "auto" again would pick another, and a preseed run twice must change nothing.
    if (v === "auto" && AUTO_ADDRESS_KEYS.includes(k) && config[k] && config[k] !== "none") continue;
    config[k] = v;
  }
  const body = { description: want.description || previous.description, config };
  return same(body, previous) ? [] : [{ kind: "update", what, url, body, previous, etag: have.etag }];
}

const AUTO_ADDRESS_KEYS = ["ipv4.address", "ipv6.address"];

function profileSteps(want: PreseedProfile, cur: Current): Step[] {
  const what = `profile "${want.name}"`;
  const url = `/1.0/profiles/${enc(want.name)}`;
  const have = cur.profiles.get(want.name);
  if (!have) {
    const body = { name: want.name, description: want.description ?? "", config: { ...want.config }, devices: structuredClone(want.devices ?? {}) };
    return [{ kind: "create", what, collection: "/1.0/profiles", url, body }];
  }
  const previous = { description: have.value.description ?? "", config: { ...have.value.config }, devices: structuredClone(have.value.devices ?? {}) };
  const devices = structuredClone(previous.devices);
  for (const [dev, keys] of Object.entries(want.devices ?? {})) devices[dev] = { ...devices[dev], ...keys };
  const body = { description: want.description || previous.description, config: { ...previous.config, ...want.config }, devices };
  return same(body, previous) ? [] : [{ kind: "update", what, url, body, previous, etag: have.etag }];
}

/** Deep equality of plain JSON values, key order aside. */
export function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** The bridge `--auto` makes is the first of lodgebr0, lodgebr1… that no one else has. */
export const AUTO_NETWORK_PREFIX = "lodgebr";

export interface AutoOptions {
  /** core.https_address's host (lxd init --network-address). */
  networkAddress?: string;
  networkPort?: number;
  /** The pool's driver (lxd init --storage-backend; dir when absent). */
  storageBackend?: string;
  /** A loop file of this many GB for the new pool (--storage-create-loop). */
  storageLoopSize?: number;
  /** A block device for the new pool (--storage-create-device). */
  storageDevice?: string;
  /** The new pool's name with a loop or a device, else its source (--storage-pool). */
  storagePool?: string;
}

/** What `--auto` needs to know besides `cur`: every network of the server and the host's interfaces. */
export interface AutoFacts {
  networks: readonly Network[];
  /** Interface names on the host (bridges are host-global: another daemon's lodgebr0 is taken). */
  hostInterfaces: readonly string[];
  /** The storage drivers the server offers (GET /1.0 environment), when it says. */
  storageDrivers?: readonly string[];
  /** Every storage pool of the server, when it has the storage pool API. */
  pools?: readonly string[];
}

/** The names `--auto` reads before planning (the networks come from AutoFacts). */
export const AUTO_NAMES = { networks: [] as string[], pools: ["default"], profiles: ["default"] };

/** The names `--auto` reads, with the pool --storage-pool names. */
export const autoNames = (opts: AutoOptions) => ({ ...AUTO_NAMES, pools: opts.storagePool ? ["default", opts.storagePool] : AUTO_NAMES.pools });

/** The first lodgebrN that is this server's managed network, or is free on the host. */
export function autoNetworkName(facts: AutoFacts): { name: string; exists: boolean } {
  const byName = new Map(facts.networks.map((n) => [n.name, n]));
  const host = new Set(facts.hostInterfaces);
  for (let i = 0; ; i++) {
    const name = `${AUTO_NETWORK_PREFIX}${i}`;
    const n = byName.get(name);
    if (n?.managed) return { name, exists: true };
    if (!n && !host.has(name)) return { name, exists: false };
  }
}

/**
 * `init --auto` as a preseed: the default storage pool, a root disk in the default profile
 * (kept as it is when it has one), and eth0 in the default profile on a bridge with IPv4 and
 * IPv6 auto (lodgebr0, or the next free name when another has it), made when missing. An eth0
 * the default profile already has is left alone; `notes` says so unless it is on a managed
 * network of this server.
 */
export function autoPreseed(cur: Current, facts: AutoFacts, opts: AutoOptions = {}): { preseed: Preseed; notes: string[] } {
  const notes: string[] = [];
  const preseed: Preseed = {};
  if (opts.networkAddress !== undefined) {
    const host = opts.networkAddress.includes(":") && !opts.networkAddress.startsWith("[") ? `[${opts.networkAddress}]` : opts.networkAddress;
    preseed.config = { "core.https_address": `${host}:${opts.networkPort ?? 8443}` };
  }
  const storage = autoStorage(cur, facts, opts);
  preseed.storage_pools = [storage.pool];
  const eth0 = cur.profiles.get("default")?.value.devices?.eth0;
  const managed = new Set(facts.networks.filter((n) => n.managed).map((n) => n.name));
  if (eth0) {
    if (!(eth0.type === "nic" && eth0.network && managed.has(eth0.network)))
      notes.push(`The default profile's eth0 is left as it is (${Object.entries(eth0).map(([k, v]) => `${k}=${v}`).join(" ")}); change it with lodge profile device`);
    preseed.profiles = [defaultProfile(cur, undefined, notes, false, storage.root)];
    return { preseed, notes };
  }
  const net = autoNetworkName(facts);
  if (!net.exists) preseed.networks = [{ name: net.name, type: "bridge", config: { "ipv4.address": "auto", "ipv6.address": "auto" } }];
  preseed.profiles = [defaultProfile(cur, { type: "nic", network: net.name, name: "eth0" }, notes, false, storage.root)];
  return { preseed, notes };
}

/**
 * The pool `--auto` wants, as lxd init's flags say: without any, the default pool as it is (dir
 * when missing). With them: `--storage-backend` (dir unless given) and a loop file
 * (`--storage-create-loop`, size in GB), a block device (`--storage-create-device`) or, alone,
 * `--storage-pool` as the source; with a loop or a device, `--storage-pool` names the pool
 * (else "default"). A pool that exists already is taken as it is if its driver is the one asked
 * for (a second run changes nothing), and refused otherwise. `root`: with storage flags, the
 * pool the default profile's root disk moves to (lxd init points it at the pool it makes).
 */
export function autoStorage(cur: Current, facts: AutoFacts, opts: AutoOptions): { pool: PreseedStoragePool; root?: string } {
  const loop = opts.storageLoopSize;
  const device = opts.storageDevice;
  if (opts.storageBackend === undefined && loop === undefined && device === undefined && opts.storagePool === undefined) return { pool: defaultPool(cur) };
  const backend = opts.storageBackend ?? "dir";
  if (facts.storageDrivers?.length && !facts.storageDrivers.includes(backend))
    throw new UsageError(`The requested backend "${backend}" isn't available on this server (available: ${facts.storageDrivers.join(", ")})`);
  if (backend === "dir" && (loop !== undefined || device !== undefined || opts.storagePool !== undefined))
    throw new UsageError("None of --storage-pool, --storage-create-device or --storage-create-loop may be used with the 'dir' backend");
  if (loop !== undefined && device !== undefined) throw new UsageError("Only one of --storage-create-device or --storage-create-loop can be specified");
  const name = opts.storagePool !== undefined && (loop !== undefined || device !== undefined) ? opts.storagePool : "default";
  const have = cur.pools?.get(name)?.value;
  if (have) {
    if (have.driver !== backend)
      throw new UsageError(
        `Storage pool "${name}" exists with driver "${have.driver}", not "${backend}": name a new ${backend} pool with --storage-pool NAME and --storage-create-loop SIZE_GB (or --storage-create-device DEVICE)`,
      );
    return { pool: { name, driver: backend }, root: name };
  }
  const config: Strings = {};
  if (device !== undefined) config.source = device;
  else if (loop !== undefined) config.size = `${loop}GB`;
  else if (opts.storagePool !== undefined) config.source = opts.storagePool;
  const pool: PreseedStoragePool = { name, driver: backend };
  if (Object.keys(config).length) pool.config = config;
  return { pool, root: name };
}

/** The default pool as init wants it: the one there is, else a new one (dir unless told). */
export function defaultPool(cur: Current, backend?: string): PreseedStoragePool {
  return { name: "default", driver: backend ?? cur.pools?.get("default")?.value.driver ?? "dir" };
}

/**
 * The default profile as init wants it: a root disk on the default pool unless it has one (on
 * `rootPool` when given: then a root disk it has moves there), and `eth0` when given. An eth0
 * it has already is left alone (and `notes` says so), unless `move` is set and it is a nic on a
 * managed network: then it moves to the new one (only its keys change, so nothing of another
 * kind of nic is left mixed in).
 */
export function defaultProfile(cur: Current, eth0: Strings | undefined, notes: string[], move = false, rootPool?: string): PreseedProfile {
  const devices: Record<string, Strings> = {};
  const have = cur.profiles.get("default")?.value.devices ?? {};
  const root = Object.keys(have).find((n) => have[n]!.type === "disk" && have[n]!.path === "/");
  if (root === undefined) devices.root = { type: "disk", path: "/", pool: rootPool ?? "default" };
  else if (rootPool !== undefined && have[root]!.pool !== rootPool) devices[root] = { ...have[root]!, pool: rootPool };
  const old = have.eth0;
  if (eth0 && (!old || (move && old.type === "nic" && old.network && !old.nictype && !old.parent && eth0.network))) devices.eth0 = eth0;
  else if (eth0 && old && !same(old, eth0))
    notes.push(`The default profile's eth0 is left as it is (${Object.entries(old).map(([k, v]) => `${k}=${v}`).join(" ")}); change it with lodge profile device`);
  return { name: "default", devices };
}
