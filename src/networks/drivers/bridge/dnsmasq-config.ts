/**
 * A bridge network's dnsmasq configuration and DHCP hosts file, as text (pure). dnsmasq gets
 * everything through its conf file (`--conf-file` is its only argument besides nothing), so the
 * file on disk says exactly what runs, and comparing it with a freshly generated one tells
 * whether dnsmasq must restart.
 *
 * The choices follow what an LXD user knows from lxdbr0: bound to the bridge alone, DHCP over
 * the whole subnet but the bridge address, authoritative, leases kept across restarts, names of
 * the network's instances under the network's domain, upstream DNS from the host's resolv.conf,
 * and dnsmasq running as an unprivileged user once it has bound its sockets.
 */
import { isIPv4, isIPv6 } from "node:net";
import type { ResolvedNetwork, StaticHost } from "../../driver.js";
import { canonicalAddress, defaultRanges, parseCidr } from "./cidr.js";
import type { NetworkFiles } from "./names.js";

/** How long a dynamic lease lasts (LXD's ipv4.dhcp.expiry default). */
const LEASE_TIME = "1h";

/** Whether the network needs a dnsmasq at all: for DHCP, router advertisements or DNS. */
export function needsDnsmasq(net: ResolvedNetwork): boolean {
  const v6 = net.ipv6;
  return Boolean(net.ipv4?.dhcp || v6?.dhcp || (v6 && v6.routerAdvertisements !== false) || (net.dnsMode !== "none" && (net.ipv4 || net.ipv6)));
}

export interface DnsmasqIdentity {
  user: string;
  group: string;
}

/** dnsmasq.conf for `net`; throws on a value that could not be written safely. */
export function dnsmasqConfig(net: ResolvedNetwork, files: NetworkFiles, id: DnsmasqIdentity): string {
  const br = net.name;
  const v4 = net.ipv4 ? parseCidr(net.ipv4.cidr) : undefined;
  const v6 = net.ipv6 ? parseCidr(net.ipv6.cidr) : undefined;
  const lines = [
    `# Written by lodged for network ${br}; rewritten at every change, do not edit.`,
    "strict-order",
    "bind-interfaces",
    "except-interface=lo",
    `interface=${br}`,
    ...[v4, v6].filter((c) => c !== undefined).map((c) => `listen-address=${c.address}`),
    `pid-file=${safe(files.pid)}`,
    `user=${safe(id.user)}`,
    `group=${safe(id.group)}`,
    // Offers at once: no ping of an address before offering it (the subnet is ours).
    "no-ping",
    // A name asked before its instance started must resolve the moment it has.
    "no-negcache",
    "quiet-dhcp",
    "quiet-dhcp6",
    "quiet-ra",
    "no-hosts",
    "dhcp-no-override",
    "dhcp-authoritative",
    `dhcp-leasefile=${safe(files.leases)}`,
    `dhcp-hostsfile=${safe(files.hosts)}`,
  ];
  if (net.ipv4 && v4 && net.ipv4.dhcp) {
    for (const [a, b] of ranges(net.ipv4.dhcpRanges, net.ipv4.cidr, 4)) lines.push(`dhcp-range=${a},${b},${LEASE_TIME}`);
    if (net.mtu !== undefined) lines.push(`dhcp-option-force=26,${int(net.mtu)}`);
  }
  if (net.ipv6 && v6) {
    const ra = net.ipv6.routerAdvertisements !== false;
    if (net.ipv6.dhcp) {
      for (const [a, b] of ranges(net.ipv6.dhcpRanges, net.ipv6.cidr, 6)) lines.push(`dhcp-range=${a},${b},${v6.prefix},${LEASE_TIME}`);
      if (ra) lines.push("enable-ra");
    } else if (ra) {
      // SLAAC, with stateless DHCPv6 for DNS, and names of hosts from their DHCPv4 leases.
      lines.push(`dhcp-range=::,constructor:${br},ra-stateless,ra-names`);
    }
  }
  if (net.dnsMode === "none") lines.push("port=0");
  else {
    const domain = net.dnsDomain;
    if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(domain)) throw new Error(`Invalid DNS domain "${domain}"`);
    lines.push(`domain=${domain}`, `local=/${domain}/`);
    // managed: only names the network gives (the hosts list), never what a client calls itself.
    if (net.dnsMode === "managed") lines.push("dhcp-ignore-names");
  }
  if (net.rawDnsmasq?.trim()) lines.push("# raw.dnsmasq", ...net.rawDnsmasq.replace(/\r/g, "").trimEnd().split("\n"));
  return lines.join("\n") + "\n";
}

function ranges(given: [string, string][], cidr: string, family: 4 | 6): [string, string][] {
  const list = given.length ? given : defaultRanges(cidr);
  const valid = family === 4 ? isIPv4 : isIPv6;
  return list.map(([a, b]) => {
    if (!valid(a) || !valid(b)) throw new Error(`Invalid IPv${family} DHCP range "${a}-${b}"`);
    return [canonicalAddress(a), canonicalAddress(b)];
  });
}

const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * The dhcp-hostsfile: one `mac,[ipv4],[[ipv6]],name` line per host. dnsmasq reads it again
 * on SIGHUP, so hosts change without a restart.
 */
export function dnsmasqHosts(hosts: StaticHost[]): string {
  return hosts
    .map((h) => {
      if (!MAC.test(h.hwaddr)) throw new Error(`Invalid MAC address "${h.hwaddr}" for host "${h.name}"`);
      if (!HOSTNAME.test(h.name)) throw new Error(`Invalid host name "${h.name}"`);
      if (h.ipv4 !== undefined && !isIPv4(h.ipv4)) throw new Error(`Invalid IPv4 address "${h.ipv4}" for host "${h.name}"`);
      if (h.ipv6 !== undefined && !isIPv6(h.ipv6)) throw new Error(`Invalid IPv6 address "${h.ipv6}" for host "${h.name}"`);
      const fields = [h.hwaddr.toLowerCase()];
      if (h.ipv4) fields.push(h.ipv4);
      if (h.ipv6) fields.push(`[${canonicalAddress(h.ipv6)}]`);
      fields.push(h.name);
      return fields.join(",") + "\n";
    })
    .join("");
}

/** A value for one config line: no line breaks, no NUL. */
function safe(v: string): string {
  if (/[\r\n\0]/.test(v) || !v) throw new Error(`Invalid dnsmasq value ${JSON.stringify(v)}`);
  return v;
}

function int(n: number): number {
  if (!Number.isInteger(n) || n <= 0) throw new Error(`Invalid MTU ${n}`);
  return n;
}
