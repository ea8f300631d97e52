/**
 * A bridge network's nftables table, as one `nft -f` script (pure). The script declares the
 * table, deletes it and declares it again with its chains, in one transaction: loading it
 * replaces the whole table atomically whether it existed or not (nft 1.0.6, Debian 12's, has no
 * `destroy`), and a ruleset the kernel refuses leaves the old table in place.
 *
 * The chains, after LXD's for lxdbr0:
 * - forward (filter): accept what enters or leaves the bridge. An accept ends only this chain:
 *   a DROP in another table's forward chain (iptables-nft, firewalld, Docker) still drops, as
 *   with LXD, and such hosts must allow the bridge in their own rules. Priority `filter`, the
 *   same as those tables, so nothing here is ordered to override them.
 * - input (filter): DHCP, DHCPv6, DNS and the ICMP that IPv6 and path MTU need, from the bridge.
 * - postrouting (nat): masquerade of the subnet leaving by any other interface (ipv4.nat,
 *   ipv6.nat), and of forwarded connections from the bridge's subnet that go back into it
 *   (a client, maybe the target itself, reaching a forward's listen address: without it the
 *   target would answer the client directly and the client would drop the reply).
 * - prerouting and output (nat) both jump to `forwards`, the DNAT rules of the network
 *   forwards: prerouting for traffic arriving from anywhere, output for the host's own.
 */
import type { ForwardPortRule, ForwardRule, ResolvedNetwork } from "../../driver.js";
import { canonicalAddress, familyOf, parseCidr, type Family } from "./cidr.js";
import { tableName } from "./names.js";

/** The script that makes the table exactly this. */
export function nftRuleset(net: ResolvedNetwork): string {
  const table = tableName(net.name);
  const br = JSON.stringify(net.name); // a quoted nft string; the name is checked by assertNetworkName
  const input: string[] = [];
  if (net.ipv4?.dhcp) input.push(`iifname ${br} udp dport 67 accept`);
  if (net.ipv6 && (net.ipv6.dhcp || net.ipv6.routerAdvertisements !== false)) input.push(`iifname ${br} udp dport 547 accept`);
  if (net.dnsMode !== "none" && (net.ipv4 || net.ipv6)) input.push(`iifname ${br} meta l4proto { tcp, udp } th dport 53 accept`);
  if (net.ipv4) input.push(`iifname ${br} icmp type { destination-unreachable, time-exceeded, parameter-problem } accept`);
  if (net.ipv6) {
    input.push(
      `iifname ${br} icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report } accept`,
    );
  }

  const postrouting: string[] = [];
  if (net.ipv4?.nat) postrouting.push(`ip saddr ${parseCidr(net.ipv4.cidr).subnet} oifname != ${br} masquerade`);
  if (net.ipv6?.nat) postrouting.push(`ip6 saddr ${parseCidr(net.ipv6.cidr).subnet} oifname != ${br} masquerade`);
  const forwards = net.forwards.flatMap(forwardLines);
  if (forwards.length) {
    // The hairpin: a DNATed connection from the subnet going back into the bridge. (By source
    // address: the input interface is unknown at the postrouting hook.)
    if (net.ipv4) postrouting.push(`oifname ${br} ip saddr ${parseCidr(net.ipv4.cidr).subnet} ct status dnat masquerade`);
    if (net.ipv6) postrouting.push(`oifname ${br} ip6 saddr ${parseCidr(net.ipv6.cidr).subnet} ct status dnat masquerade`);
  }

  const chains = [
    chain("forward", "type filter hook forward priority filter; policy accept;", [`iifname ${br} accept`, `oifname ${br} accept`]),
    chain("input", "type filter hook input priority filter; policy accept;", input),
    chain("postrouting", "type nat hook postrouting priority srcnat; policy accept;", postrouting),
  ];
  if (forwards.length) {
    chains.push(
      chain("forwards", undefined, forwards),
      chain("prerouting", "type nat hook prerouting priority dstnat; policy accept;", ["jump forwards"]),
      // `dstnat` names a priority of the prerouting hook only; -100 is its value.
      chain("output", "type nat hook output priority -100; policy accept;", ["jump forwards"]),
    );
  }
  return [`table inet ${table}`, `delete table inet ${table}`, `table inet ${table} {`, chains.join("\n\n"), "}", ""].join("\n");
}

/** The script that deletes the table, quietly when it does not exist. */
export function nftDeleteScript(name: string): string {
  const table = tableName(name);
  return `table inet ${table}\ndelete table inet ${table}\n`;
}

function chain(name: string, hook: string | undefined, rules: string[]): string {
  return [`\tchain ${name} {`, ...(hook ? [`\t\t${hook}`] : []), ...rules.map((r) => `\t\t${r}`), "\t}"].join("\n");
}

/** The DNAT rules of one forward: its port rules in order, then its default target. */
export function forwardLines(f: ForwardRule): string[] {
  const family = addressFamily(f.listenAddress, "listen address");
  const listen = canonicalAddress(f.listenAddress);
  const ip = family === 4 ? "ip" : "ip6";
  const out = f.ports.map((p) => portRuleLine(ip, family, listen, p));
  if (f.defaultTarget !== undefined) {
    sameFamily(family, f.defaultTarget);
    out.push(`${ip} daddr ${listen} dnat ${ip} to ${canonicalAddress(f.defaultTarget)}`);
  }
  return out;
}

function portRuleLine(ip: "ip" | "ip6", family: Family, listen: string, p: ForwardPortRule): string {
  if (p.protocol !== "tcp" && p.protocol !== "udp") throw new Error(`Invalid forward protocol "${String(p.protocol)}"`);
  sameFamily(family, p.targetAddress);
  const target = canonicalAddress(p.targetAddress);
  const listenRanges = parsePorts(p.listenPorts);
  const match = `${ip} daddr ${listen} ${p.protocol} dport ${portSet(listenRanges)}`;
  if (p.targetPorts === undefined) return `${match} dnat ${ip} to ${target}`;
  const targetRanges = parsePorts(p.targetPorts);
  const targets = expand(targetRanges);
  if (targets.length === 1) return `${match} dnat ${ip} to ${hostPort(family, target, targets[0]!)}`;
  const listens = expand(listenRanges);
  if (listens.length !== targets.length) {
    throw new Error(`Forward ports "${p.listenPorts}" and target ports "${p.targetPorts}" differ in count (${listens.length} and ${targets.length})`);
  }
  // Port i of the listen ports goes to port i of the target ports: a map, one lookup.
  const pairs = listens.map((l, i) => `${l} : ${target} . ${targets[i]}`);
  return `${ip} daddr ${listen} dnat ${ip} to ${p.protocol} dport map { ${pairs.join(", ")} }`;
}

function hostPort(family: Family, address: string, port: number): string {
  return family === 4 ? `${address}:${port}` : `[${address}]:${port}`;
}

/** "80,443,8000-8010" → [[80,80],[443,443],[8000,8010]]; throws on anything else. */
export function parsePorts(spec: string): [number, number][] {
  const out: [number, number][] = [];
  for (const part of spec.split(",")) {
    const m = /^\s*(\d{1,5})(?:\s*-\s*(\d{1,5}))?\s*$/.exec(part);
    const lo = Number(m?.[1]);
    const hi = m?.[2] === undefined ? lo : Number(m[2]);
    if (!m || lo < 1 || hi > 65535 || hi < lo) throw new Error(`Invalid port or port range "${part.trim()}" in "${spec}"`);
    out.push([lo, hi]);
  }
  return out;
}

function portSet(ranges: [number, number][]): string {
  const items = ranges.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}-${hi}`));
  return items.length === 1 && !items[0]!.includes("-") ? items[0]! : `{ ${items.join(", ")} }`;
}

function expand(ranges: [number, number][]): number[] {
  const out: number[] = [];
  for (const [lo, hi] of ranges) for (let p = lo; p <= hi; p++) out.push(p);
  return out;
}

function addressFamily(address: string, what: string): Family {
  const family = familyOf(address);
  if (!family) throw new Error(`Invalid forward ${what} "${address}"`);
  return family;
}

function sameFamily(family: Family, target: string): void {
  if (addressFamily(target, "target address") !== family) throw new Error(`Forward target "${target}" is not an IPv${family} address like its listen address`);
}
