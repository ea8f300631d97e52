/**
 * The `bridge` network driver: a Linux bridge with the network's addresses, one dnsmasq for
 * DHCP, router advertisements and DNS, and one nftables table for NAT, forwards and the
 * accepts the bridge needs. The pieces, one idea each, are in ./bridge/:
 *
 * - link.ts: the bridge, its MTU, MAC and addresses (iproute2);
 * - sysctl.ts: forwarding and the bridge's IPv6 settings (/proc/sys);
 * - dnsmasq-config.ts and dnsmasq.ts: dnsmasq's files (pure) and its process;
 * - nft-ruleset.ts and nftables.ts: the table (pure) and loading it;
 * - leases.ts: dnsmasq's lease file and the static hosts (pure);
 * - state.ts: the bridge's state from sysfs;
 * - names.ts and atomic-file.ts: where things are, and writing them whole.
 *
 * Everything is found from the network's name (names.ts), and apply() converges: it reads what
 * is there and changes only what differs, so applying the same settings again touches nothing
 * and leaves dnsmasq running. Calls for one network run one at a time.
 *
 * Files in <runDir>/<name>/ (the directory 0711, so dnsmasq, once it runs as nobody, reaches
 * its hosts file and nothing else lists the directory): dnsmasq.conf (0600, read by dnsmasq as
 * root at start), dnsmasq.hosts (0644, read again as nobody on SIGHUP), dnsmasq.leases and
 * dnsmasq.pid (dnsmasq's, opened as root before it drops privileges), nftables.conf and
 * network.json (0600, what was applied last).
 */
import { chmod, mkdir, readFile, rm } from "node:fs/promises";
import type { Logger } from "../../core/logger.js";
import type { ForwardRule, Lease, NetworkDriver, NetworkState, ResolvedNetwork, StaticHost } from "../driver.js";
import { dnsmasqConfig, dnsmasqHosts, needsDnsmasq, type DnsmasqIdentity } from "./bridge/dnsmasq-config.js";
import { dnsmasqIdentity, dnsmasqPid, reloadDnsmasq, startDnsmasq, stopDnsmasq } from "./bridge/dnsmasq.js";
import { writeFileAtomic } from "./bridge/atomic-file.js";
import { mergeLeases, parseLeaseFile } from "./bridge/leases.js";
import { deleteBridge, ensureBridge, setUp, stableHwaddr, syncAddresses } from "./bridge/link.js";
import { assertNetworkName, networkFiles, type NetworkFiles } from "./bridge/names.js";
import { nftRuleset } from "./bridge/nft-ruleset.js";
import { deleteTable, loadTable } from "./bridge/nftables.js";
import { readState } from "./bridge/state.js";
import { configureBridgeIPv6, enableForwarding } from "./bridge/sysctl.js";

export interface BridgeDriverOptions {
  /** Where each network's files go, one directory per network: `<LODGE_DIR>/networks`. */
  runDir: string;
  log?: Logger;
}

export class BridgeDriver implements NetworkDriver {
  readonly type = "bridge";
  private readonly runDir: string;
  private readonly log?: Logger;
  /** The tail of each network's queue of calls. */
  private readonly queues = new Map<string, Promise<unknown>>();
  /** What was applied last, by network (also on disk, for a daemon that restarted). */
  private readonly applied = new Map<string, ResolvedNetwork>();
  private identity?: Promise<DnsmasqIdentity>;

  constructor(opts: BridgeDriverOptions) {
    this.runDir = opts.runDir;
    this.log = opts.log;
  }

  apply(net: ResolvedNetwork, signal?: AbortSignal): Promise<void> {
    assertNetworkName(net.name);
    return this.serialize(net.name, () => this.converge(net, signal));
  }

  remove(name: string): Promise<void> {
    assertNetworkName(name);
    return this.serialize(name, () => this.removeNow(name));
  }

  /**
   * Takes the old network down and brings the new one up, carrying dnsmasq's leases over so
   * clients keep their addresses. (A bridge can only be renamed while down, and its table and
   * dnsmasq not at all, so there is nothing to gain from renaming in place.)
   */
  async rename(from: string, to: ResolvedNetwork): Promise<void> {
    assertNetworkName(from);
    assertNetworkName(to.name);
    const leases = await this.serialize(from, async () => {
      const text = await readFile(this.files(from).leases, "utf8").catch(() => undefined);
      await this.removeNow(from);
      return text;
    });
    await this.serialize(to.name, async () => {
      const files = this.files(to.name);
      if (leases !== undefined) {
        await this.makeDir(files);
        // Only when the new network has none of its own (a rename onto leftovers keeps them).
        await readFile(files.leases).catch(() => writeFileAtomic(files.leases, leases, 0o644));
      }
      await this.converge(to);
    });
  }

  updateHosts(name: string, hosts: StaticHost[]): Promise<void> {
    assertNetworkName(name);
    return this.serialize(name, async () => {
      const files = this.files(name);
      const text = dnsmasqHosts(hosts);
      const net = await this.lastApplied(name);
      if (net) await this.record({ ...net, hosts }, files);
      await this.makeDir(files);
      if (await writeIfChanged(files.hosts, text, 0o644)) await reloadDnsmasq(files);
    });
  }

  updateForwards(name: string, forwards: ForwardRule[]): Promise<void> {
    assertNetworkName(name);
    return this.serialize(name, async () => {
      const net = await this.lastApplied(name);
      if (!net) throw new Error(`Network "${name}" has not been set up on this host yet`);
      const next = { ...net, forwards };
      const files = this.files(name);
      await loadTable(name, nftRuleset(next), files);
      await this.record(next, files);
    });
  }

  async leases(name: string): Promise<Lease[]> {
    assertNetworkName(name);
    const files = this.files(name);
    const text = await readFile(files.leases, "utf8").catch(() => "");
    const net = await this.lastApplied(name);
    return mergeLeases(net?.hosts ?? [], parseLeaseFile(text));
  }

  state(name: string): Promise<NetworkState | undefined> {
    assertNetworkName(name);
    return readState(name);
  }

  /** A pid file and a /proc read: no process is spawned. */
  async healthy(name: string): Promise<boolean> {
    assertNetworkName(name);
    const files = this.files(name);
    // No conf file: the network needs no dnsmasq (apply removes the file then).
    if ((await readFile(files.conf).catch(() => undefined)) === undefined) return true;
    return (await dnsmasqPid(files)) !== undefined;
  }

  // -------------------------------------------------------------------------------------------

  private async converge(net: ResolvedNetwork, signal?: AbortSignal): Promise<void> {
    const name = net.name;
    const files = this.files(name);
    const log = this.log?.child({ network: name });
    // Everything generated (and so validated) before the host is touched.
    const cidrs = [net.ipv4?.cidr, net.ipv6?.cidr].filter((c): c is string => c !== undefined);
    const hosts = dnsmasqHosts(net.hosts);
    const conf = needsDnsmasq(net) ? dnsmasqConfig(net, files, await this.dnsmasqUser()) : undefined;
    const ruleset = nftRuleset(net);

    await this.makeDir(files);
    const link = await ensureBridge({ name, mtu: net.mtu, hwaddr: net.hwaddr ?? stableHwaddr(name), cidrs }, signal);
    await configureBridgeIPv6(name, net.ipv6 !== undefined);
    // A bridge made again, or an address given back, under a running dnsmasq: dnsmasq copes
    // today (its DHCP matches the interface by name, its DNS sockets are bound to addresses that
    // came back, it follows RA interfaces by netlink), but with bind-interfaces that is an
    // accident of its internals; a restart, in this rare case, does not depend on them.
    const relinked = (await syncAddresses(name, cidrs, signal)) || link.made;
    if (!link.up) await setUp(name, signal);
    if (cidrs.length) await enableForwarding(net.ipv6 !== undefined);
    if (await loadTable(name, ruleset, files, signal)) log?.debug("Loaded the network's nftables table");

    const hostsChanged = await writeIfChanged(files.hosts, hosts, 0o644);
    if (!conf) {
      await stopDnsmasq(files);
      await rm(files.conf, { force: true });
    } else {
      const onDisk = await readFile(files.conf, "utf8").catch(() => undefined);
      const pid = await dnsmasqPid(files);
      if (onDisk === conf && pid !== undefined && !relinked) {
        if (hostsChanged) await reloadDnsmasq(files);
      } else {
        await stopDnsmasq(files);
        await writeFileAtomic(files.conf, conf, 0o600);
        const started = await startDnsmasq(files, signal);
        const reason = onDisk !== conf ? "configuration changed" : pid === undefined ? "not running" : "bridge made again";
        log?.info(pid === undefined ? "Started dnsmasq" : "Restarted dnsmasq", { pid: started, reason });
      }
    }
    await this.record(net, files);
  }

  private async removeNow(name: string): Promise<void> {
    const files = this.files(name);
    await deleteTable(name, files);
    await stopDnsmasq(files);
    await deleteBridge(name);
    await rm(files.dir, { recursive: true, force: true });
    this.applied.delete(name);
  }

  private files(name: string): NetworkFiles {
    return networkFiles(this.runDir, name);
  }

  private async makeDir(files: NetworkFiles): Promise<void> {
    // dnsmasq, as nobody, must pass through both to reach its hosts file.
    for (const dir of [this.runDir, files.dir]) {
      await mkdir(dir, { recursive: true, mode: 0o711 });
      await chmod(dir, 0o711);
    }
  }

  private async record(net: ResolvedNetwork, files: NetworkFiles): Promise<void> {
    await writeFileAtomic(files.applied, JSON.stringify(net, null, 2) + "\n", 0o600);
    this.applied.set(net.name, net);
  }

  private async lastApplied(name: string): Promise<ResolvedNetwork | undefined> {
    const known = this.applied.get(name);
    if (known) return known;
    const text = await readFile(this.files(name).applied, "utf8").catch(() => undefined);
    if (text === undefined) return undefined;
    const net = JSON.parse(text) as ResolvedNetwork;
    this.applied.set(name, net);
    return net;
  }

  private dnsmasqUser(): Promise<DnsmasqIdentity> {
    this.identity ??= dnsmasqIdentity();
    return this.identity;
  }

  /** Runs `fn` after every earlier call for the same network has settled. */
  private serialize<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(name) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.queues.set(name, tail);
    void tail.then(() => {
      if (this.queues.get(name) === tail) this.queues.delete(name);
    });
    return next;
  }
}

/** Writes `text` to `file` unless it holds exactly that; returns whether it wrote. */
async function writeIfChanged(file: string, text: string, mode: number): Promise<boolean> {
  if ((await readFile(file, "utf8").catch(() => undefined)) === text) return false;
  await writeFileAtomic(file, text, mode);
  return true;
}
