/**
 * Managed networks: create, read, change, rename, delete, and keeping what each owns on the
 * host (through its driver) in step with the store: at daemon start, after a change, when an
 * instance NIC comes or goes (static hosts), and when its dnsmasq dies (a watchdog).
 */
import { badRequest, conflict, notFound, preconditionFailed } from "../api/errors.js";
import { etagOf } from "../api/etag.js";
import type { Network, NetworkPut, NetworksPost } from "../api/network.js";
import type { EventHub } from "../core/events.js";
import type { Logger } from "../core/logger.js";
import { Revert } from "../core/revert.js";
import { KeyedLock } from "../instances/locks.js";
import type { ManagedNetworks } from "../instances/nic-parents.js";
import type { DocumentStore } from "../state/store.js";
import { checkStaticAddresses, resolveAddresses, staticAddressProblem } from "./addresses.js";
import { checkNetworkName, fillBridgeDefaults, resolveBridge, validateBridgeConfig } from "./config.js";
import type { Lease, NetworkDriver, NetworkState, ResolvedNetwork, StaticHost } from "./driver.js";
import { forwardRules } from "./forward-rules.js";
import { hostInterface, hostInterfaces } from "./host-interfaces.js";
import { forwardPrefix, networkKey, networkPrefix, networkUrl, type ForwardRecord, type NetworkRecord } from "./record.js";
import { hostPrefixes, type TakenPrefix } from "./subnets.js";
import { nicUses, staticHosts, usedBy, type NetworkUserSource, type NicUse } from "./users.js";

const LOCK_TIMEOUT_MS = 60_000;
/** How often the watchdog checks that each network's dnsmasq lives. */
const WATCH_INTERVAL_MS = 2_000;

export interface NetworkServiceDeps {
  store: DocumentStore;
  driver: NetworkDriver;
  users: NetworkUserSource;
  events: EventHub;
  log: Logger;
  /** Host prefixes in use (routes and addresses); the host's tables unless a test gives its own. */
  hostPrefixes?: () => Promise<TakenPrefix[]>;
}

export class NetworkService implements ManagedNetworks {
  readonly locks = new KeyedLock();
  private watchdog?: NodeJS.Timeout;
  private watching?: Promise<void>;
  /** The static hosts last given to each network's driver, to skip unchanged rewrites. */
  private readonly hostsWritten = new Map<string, string>();

  constructor(private readonly d: NetworkServiceDeps) {}

  private get store(): DocumentStore {
    return this.d.store;
  }

  etag(r: NetworkRecord): string {
    return etagOf({ config: r.config, description: r.description });
  }

  // ---- reads ----------------------------------------------------------------------------

  async records(project: string): Promise<NetworkRecord[]> {
    return (await this.store.list<NetworkRecord>(networkPrefix(project))).map((d) => d.value).filter((r) => r.phase === "ready");
  }

  async record(project: string, name: string): Promise<NetworkRecord> {
    const doc = await this.store.get<NetworkRecord>(networkKey(project, name));
    if (!doc || doc.value.phase !== "ready") throw notFound(`Network "${name}" not found`);
    return doc.value;
  }

  private view(r: NetworkRecord, uses: readonly NicUse[]): Network {
    return { name: r.name, description: r.description, type: r.type, managed: true, status: "Created", config: r.config, used_by: usedBy(uses, r.name), locations: ["none"] };
  }

  /** Managed networks and the host's other interfaces (unmanaged), as LXD lists them. */
  async list(project: string): Promise<Network[]> {
    const [records, uses, host] = await Promise.all([this.records(project), nicUses(this.d.users, project), hostInterfaces()]);
    const managed = new Set(records.map((r) => r.name));
    const out = records.map((r) => this.view(r, uses));
    for (const h of host) if (!managed.has(h.name)) out.push(unmanagedView(h.name, h.type, uses));
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async get(project: string, name: string): Promise<{ network: Network; etag?: string }> {
    const doc = await this.store.get<NetworkRecord>(networkKey(project, name));
    const uses = await nicUses(this.d.users, project);
    if (doc && doc.value.phase === "ready") return { network: this.view(doc.value, uses), etag: this.etag(doc.value) };
    const h = await hostInterface(name);
    if (!h) throw notFound(`Network "${name}" not found`);
    return { network: unmanagedView(h.name, h.type, uses) };
  }

  async leases(project: string, name: string): Promise<Lease[]> {
    await this.record(project, name);
    return this.d.driver.leases(name);
  }

  /** State of a managed network or any host interface. */
  async state(project: string, name: string): Promise<NetworkState> {
    const doc = await this.store.get<NetworkRecord>(networkKey(project, name));
    if (!doc && !(await hostInterface(name))) throw notFound(`Network "${name}" not found`);
    const s = await this.d.driver.state(name);
    if (!s) throw notFound(`Network interface "${name}" not found`);
    return s;
  }

  // ---- changes --------------------------------------------------------------------------

  async create(project: string, req: NetworksPost): Promise<NetworkRecord> {
    if (!req || typeof req !== "object" || Array.isArray(req)) throw badRequest("The request body must be a network object");
    const name = checkNetworkName(req.name);
    const type = req.type || "bridge";
    if (type !== "bridge") throw badRequest(`Network type "${type}" is not supported (supported: bridge)`);
    if (typeof (req.description ?? "") !== "string") throw badRequest("description must be a string");
    const given = validateBridgeConfig(req.config);
    return this.locks.with(`${project}/${name}`, `Network "${name}"`, LOCK_TIMEOUT_MS, async () => {
      if (await this.store.get(networkKey(project, name))) throw conflict(`Network "${name}" already exists`);
      if (await hostInterface(name)) throw conflict(`Network "${name}" already exists on the host (an interface has that name)`);
      const config = await resolveAddresses(this.store, this.d.hostPrefixes ?? hostPrefixes, project, name, fillBridgeDefaults(given), {});
      const record: NetworkRecord = { name, project, type: "bridge", description: req.description ?? "", config, phase: "creating" };
      const undo = new Revert();
      try {
        try {
          await this.store.put(networkKey(project, name), record, { revision: 0 });
        } catch {
          throw conflict(`Network "${name}" already exists`);
        }
        undo.add(() => this.store.delete(networkKey(project, name)));
        undo.add(() => this.d.driver.remove(name));
        await this.d.driver.apply(await this.resolved(project, record));
        const ready: NetworkRecord = { ...record, phase: "ready" };
        await this.store.put(networkKey(project, name), ready);
        undo.release();
        this.d.events.lifecycle("network-created", networkUrl(project, name), {}, project);
        this.d.log.info("network created", { network: name, ipv4: config["ipv4.address"], ipv6: config["ipv6.address"] });
        return ready;
      } finally {
        await undo.run();
      }
    });
  }

  /** PUT replaces description and config; PATCH merges them (a "" value unsets). */
  async update(project: string, name: string, put: NetworkPut, mode: "put" | "patch", ifMatch?: string): Promise<void> {
    if (!put || typeof put !== "object" || Array.isArray(put)) throw badRequest("The request body must be a network object");
    await this.locks.with(`${project}/${name}`, `Network "${name}"`, LOCK_TIMEOUT_MS, async () => {
      const before = await this.record(project, name);
      if (ifMatch && ifMatch !== this.etag(before)) throw preconditionFailed(`Network "${name}" changed since it was read (ETag mismatch)`);
      let merged: Record<string, string>;
      if (mode === "put") merged = validateBridgeConfig(put.config ?? {});
      else {
        merged = { ...before.config, ...validateBridgeConfig(put.config ?? {}) };
        for (const [k, v] of Object.entries(merged)) if (v === "") delete merged[k];
        validateBridgeConfig(merged);
      }
      // A PUT that leaves an address out turns that family off? LXD keeps "auto" semantics only
      // at create; an absent address afterwards means none, as in LXD.
      for (const f of ["ipv4", "ipv6"]) if (merged[`${f}.address`] === undefined) merged[`${f}.address`] = "none";
      const config = await resolveAddresses(this.store, this.d.hostPrefixes ?? hostPrefixes, project, name, merged, before.config);
      if (typeof (put.description ?? "") !== "string") throw badRequest("description must be a string");
      const after: NetworkRecord = { ...before, config, description: put.description ?? (mode === "put" ? "" : before.description) };
      checkStaticAddresses(await nicUses(this.d.users, project), after);
      try {
        await this.d.driver.apply(await this.resolved(project, after));
      } catch (e) {
        await this.d.driver.apply(await this.resolved(project, before)).catch((err: Error) => this.d.log.error("network restore failed", { network: name, err: err.message }));
        throw e;
      }
      await this.store.put(networkKey(project, name), after);
    });
    this.d.events.lifecycle("network-updated", networkUrl(project, name), {}, project);
  }

  async rename(project: string, name: string, newName: unknown): Promise<string> {
    const target = checkNetworkName(newName);
    const [a, b] = [name, target].sort() as [string, string];
    await this.locks.with(`${project}/${a}`, `Network "${a}"`, LOCK_TIMEOUT_MS, () =>
      this.locks.with(`${project}/${b}`, `Network "${b}"`, LOCK_TIMEOUT_MS, async () => {
        const r = await this.record(project, name);
        const users = usedBy(await nicUses(this.d.users, project), name);
        if (users.length) throw badRequest(`Network "${name}" is in use (by ${users.join(", ")}); it cannot be renamed`);
        if (await this.store.get(networkKey(project, target))) throw conflict(`Network "${target}" already exists`);
        if (await hostInterface(target)) throw conflict(`An interface named "${target}" already exists on the host`);
        const moved: NetworkRecord = { ...r, name: target };
        await this.d.driver.rename(name, await this.resolved(project, moved));
        const forwards = await this.store.list<ForwardRecord>(forwardPrefix(project, name));
        await this.store.txn((tx) => {
          tx.delete(networkKey(project, name));
          tx.put(networkKey(project, target), moved);
          for (const f of forwards) {
            tx.delete(f.key);
            tx.put(`${forwardPrefix(project, target)}${f.value.listen_address}`, { ...f.value, network: target });
          }
        });
        this.hostsWritten.delete(name);
      }),
    );
    this.d.events.lifecycle("network-renamed", networkUrl(project, target), { old_name: name }, project);
    return target;
  }

  async delete(project: string, name: string): Promise<void> {
    await this.locks.with(`${project}/${name}`, `Network "${name}"`, LOCK_TIMEOUT_MS, async () => {
      const doc = await this.store.get<NetworkRecord>(networkKey(project, name));
      if (!doc) {
        if (await hostInterface(name)) throw badRequest(`Network "${name}" is not managed by Lodge; only managed networks can be deleted`);
        throw notFound(`Network "${name}" not found`);
      }
      const users = usedBy(await nicUses(this.d.users, project), name);
      if (users.length) throw badRequest(`The network is currently in use: "${name}" is used by ${users.join(", ")}`);
      await this.d.driver.remove(name);
      const forwards = await this.store.list(forwardPrefix(project, name));
      await this.store.txn((tx) => {
        tx.delete(networkKey(project, name));
        for (const f of forwards) tx.delete(f.key);
      });
      this.hostsWritten.delete(name);
    });
    this.d.events.lifecycle("network-deleted", networkUrl(project, name), {}, project);
  }

  /** ManagedNetworks (instances/nic-parents.ts): the network exists and can give the static addresses. */
  async nicProblem(project: string, device: Record<string, string>, instance?: string): Promise<string | undefined> {
    const name = device.network!;
    const doc = await this.store.get<NetworkRecord>(networkKey(project, name));
    if (!doc || doc.value.phase !== "ready") return `network "${name}" not found`;
    const uses = (["ipv4", "ipv6"] as const).some((f) => device[`${f}.address`]) ? await nicUses(this.d.users, project) : [];
    for (const f of ["ipv4", "ipv6"] as const) {
      const addr = device[`${f}.address`];
      if (!addr) continue;
      const problem = staticAddressProblem(doc.value, f, addr);
      if (problem) return problem;
      const other = uses.find((u) => u.network === name && u.instance && u.instance !== instance && u.nic[`${f}.address`] === addr);
      if (other) return `${f}.address ${addr} is already used by instance "${other.instance}" on network "${name}"`;
    }
    return undefined;
  }

  // ---- host state -----------------------------------------------------------------------

  /** The driver's view of a record, with its static hosts and forwards. */
  async resolved(project: string, r: NetworkRecord, uses?: readonly NicUse[]): Promise<ResolvedNetwork> {
    const hosts = staticHosts(uses ?? (await nicUses(this.d.users, project)), r.name);
    const forwards = (await this.store.list<ForwardRecord>(forwardPrefix(project, r.name))).map((d) => d.value);
    return resolveBridge(r.name, r.config, hosts, forwardRules(forwards));
  }

  /**
   * At daemon start: networks whose create was cut short are undone; every other network's
   * host state is brought back (after a host reboot, or a dnsmasq that died while lodged was
   * away) before instances start; then the watchdog runs.
   */
  async start(): Promise<void> {
    for (const doc of await this.store.list<NetworkRecord>(networkPrefix())) {
      const r = doc.value;
      if (r.phase === "creating") {
        this.d.log.warn("undoing a network create that was cut short", { network: r.name });
        await this.d.driver.remove(r.name).catch(() => {});
        await this.store.delete(doc.key);
        continue;
      }
      try {
        await this.d.driver.apply(await this.resolved(r.project, r));
      } catch (e) {
        this.d.log.error("network could not be brought up", { network: r.name, err: (e as Error).message });
      }
    }
    this.unsubscribe = this.d.events.subscribe({
      types: new Set(["lifecycle"]),
      send: (e) => {
        const action = (e.metadata as { action?: string }).action ?? "";
        if (/^(instance|profile)-(created|updated|deleted|renamed)$/.test(action)) this.scheduleHostSync(e.project ?? "default");
      },
    });
    this.watchdog = setInterval(() => {
      this.watching ??= this.checkHealth().finally(() => (this.watching = undefined));
    }, WATCH_INTERVAL_MS);
    this.watchdog.unref();
  }

  private unsubscribe?: () => void;
  private syncTimer?: NodeJS.Timeout;
  private syncing: Promise<void> = Promise.resolve();

  async close(): Promise<void> {
    this.unsubscribe?.();
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.syncTimer) clearTimeout(this.syncTimer);
    await this.watching;
    await this.syncing.catch(() => {});
  }

  private scheduleHostSync(project: string): void {
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      void this.syncHosts(project);
    }, 20);
  }

  /** Gives each network of the project its current static hosts (only those that changed). */
  syncHosts(project: string): Promise<void> {
    const next = this.syncing.then(async () => {
      const uses = await nicUses(this.d.users, project);
      for (const r of await this.records(project)) {
        const hosts: StaticHost[] = staticHosts(uses, r.name);
        const text = JSON.stringify(hosts);
        if (this.hostsWritten.get(r.name) === text) continue;
        try {
          await this.d.driver.updateHosts(r.name, hosts);
          this.hostsWritten.set(r.name, text);
        } catch (e) {
          this.d.log.error("network hosts update failed", { network: r.name, err: (e as Error).message });
        }
      }
    });
    this.syncing = next.catch(() => {});
    return next;
  }

  private async checkHealth(): Promise<void> {
    for (const doc of await this.store.list<NetworkRecord>(networkPrefix()).catch(() => [])) {
      const r = doc.value;
      if (r.phase !== "ready") continue;
      if (await this.d.driver.healthy(r.name).catch(() => true)) continue;
      this.d.log.warn("network's dnsmasq is gone; starting it again", { network: r.name });
      await this.locks
        .with(`${r.project}/${r.name}`, `Network "${r.name}"`, LOCK_TIMEOUT_MS, async () => this.d.driver.apply(await this.resolved(r.project, await this.record(r.project, r.name))))
        .catch((e: Error) => this.d.log.error("network repair failed", { network: r.name, err: e.message }));
    }
  }
}

function unmanagedView(name: string, type: string, uses: readonly NicUse[]): Network {
  return { name, description: "", type, managed: false, status: "", config: {}, used_by: usedBy(uses, name), locations: [] };
}
