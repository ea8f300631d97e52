/**
 * Who uses a network: instances (through their own devices or their profiles) and profiles
 * whose NICs name it or sit on its bridge. The same walk gives each network its static DHCP hosts: one per
 * instance NIC, with the instance's name for DNS and the NIC's MAC and static addresses.
 */
import { expandDevices } from "../instances/expand.js";
import { instanceUrl, type InstanceRecord } from "../instances/record.js";
import type { ProfileLayer, ProfileRecord } from "../profiles/record.js";
import { profileUrl } from "../profiles/record.js";
import type { StaticHost } from "./driver.js";

/** Reads of the instance side the network service needs (InstanceService and ProfileStore give them). */
export interface NetworkUserSource {
  records(project?: string): Promise<InstanceRecord[]>;
  layers(r: InstanceRecord): Promise<ProfileLayer[]>;
  profiles(project: string): Promise<ProfileRecord[]>;
}

/** One NIC on a managed network. */
export interface NicUse {
  network: string;
  project: string;
  /** "/1.0/instances/c1" or "/1.0/profiles/default". */
  url: string;
  instance?: string;
  device: string;
  nic: Record<string, string>;
  hwaddr?: string;
}

/** Every NIC of the project's instances (expanded) and profiles that names a managed network. */
export async function nicUses(src: NetworkUserSource, project: string): Promise<NicUse[]> {
  const out: NicUse[] = [];
  const [records, profiles] = await Promise.all([src.records(project), src.profiles(project)]);
  for (const r of records) {
    if (r.phase === "deleting") continue;
    const devices = expandDevices(r, await src.layers(r));
    for (const [device, d] of Object.entries(devices))
      if (networkOf(d))
        out.push({ network: networkOf(d)!, project, url: instanceUrl(project, r.name), instance: r.name, device, nic: d, hwaddr: d.hwaddr || r.config[`volatile.${device}.hwaddr`] });
  }
  for (const p of profiles)
    for (const [device, d] of Object.entries(p.devices))
      if (networkOf(d)) out.push({ network: networkOf(d)!, project, url: profileUrl(project, p.name), device, nic: d });
  return out;
}

/**
 * The network a NIC is on: the managed network it names, or the bridge it is a port of (a
 * bridged NIC whose parent is a managed network's bridge uses that network, as in LXD).
 */
function networkOf(d: Record<string, string>): string | undefined {
  if (d.type !== "nic") return undefined;
  return d.network || (d.nictype === "bridged" ? d.parent : undefined) || undefined;
}

/** The used_by list of one network: unique URLs, sorted. */
export function usedBy(uses: readonly NicUse[], network: string): string[] {
  return [...new Set(uses.filter((u) => u.network === network).map((u) => u.url))].sort();
}

/** The static DHCP hosts of one network: instance NICs with a MAC. */
export function staticHosts(uses: readonly NicUse[], network: string): StaticHost[] {
  const hosts: StaticHost[] = [];
  for (const u of uses) {
    if (u.network !== network || !u.instance || !u.hwaddr) continue;
    const h: StaticHost = { hwaddr: u.hwaddr.toLowerCase(), name: u.instance };
    if (u.nic["ipv4.address"]) h.ipv4 = u.nic["ipv4.address"];
    if (u.nic["ipv6.address"]) h.ipv6 = u.nic["ipv6.address"];
    hosts.push(h);
  }
  return hosts.sort((a, b) => (a.hwaddr < b.hwaddr ? -1 : a.hwaddr > b.hwaddr ? 1 : 0));
}
