/**
 * The network part of a container's state, from files only: no process is spawned and no
 * namespace is entered, so listing hundreds of instances costs file reads. Everything is read
 * for the network namespace of the container's init (PID):
 *
 * - /proc/PID/net/dev: the interfaces, in the kernel's order, and their counters;
 * - /proc/PID/net/if_inet6: IPv6 addresses with prefix length, scope and interface;
 * - /proc/PID/net/fib_trie: IPv4 local addresses (`/32 host LOCAL` leaves) and the prefix of
 *   the connected route around each; /proc/PID/net/route says which interface that route is on
 *   (fib_trie names no interfaces, and no /proc file lists IPv4 addresses by interface);
 * - the container's own sysfs, mounted inside its network namespace and so showing its
 *   interfaces: address, mtu, flags, ifindex and iflink of each;
 * - the host's /sys/class/net: the interface whose ifindex is a container interface's iflink,
 *   and whose iflink is that interface's ifindex, is its host side (the veth peer), `host_name`.
 *
 * The container's sysfs is reached through /proc/PID/root, a tree the container controls: it
 * could mount a tmpfs there whose symlinks point into the host's files. So every file under it is
 * opened without following a final symlink and used only if it lies on one of the container's
 * sysfs mounts (device numbers from /proc/PID/mountinfo, which the kernel writes); anything else
 * reads as missing, and the fields it would fill keep their empty values.
 *
 * Limits of the file-based view: an IPv4 address outside every connected route (a /32, or one
 * whose route was deleted) is placed on the only non-loopback interface when there is one and
 * left out otherwise.
 */
import { constants } from "node:fs";
import { endianness } from "node:os";
import type { NetworkAddress, NetworkCounters, NetworkInterfaceState } from "../../driver.js";
import { readSmall } from "../../../sys/small-file.js";
import { hostLinks, type HostLinks } from "./hostlinks.js";

// ---------------------------------------------------------------------------------------------
// Parsers (pure)

/** Interface counters from /proc/<pid>/net/dev, in the file's order. */
export function parseNetDev(text: string): Record<string, { counters: NetworkCounters }> {
  const out: Record<string, { counters: NetworkCounters }> = {};
  for (const line of text.split("\n").slice(2)) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    if (f.length < 16) continue;
    out[m[1]!] = {
      counters: {
        bytes_received: f[0]!,
        packets_received: f[1]!,
        errors_received: f[2]!,
        packets_dropped_inbound: f[3]!,
        bytes_sent: f[8]!,
        packets_sent: f[9]!,
        errors_sent: f[10]!,
        packets_dropped_outbound: f[11]!,
      },
    };
  }
  return out;
}

export interface Inet6Entry {
  iface: string;
  ifindex: number;
  address: string;
  prefix: number;
  scope: NetworkAddress["scope"];
}

/** /proc/<pid>/net/if_inet6: "ADDR32HEX IFINDEX PREFIXLEN SCOPE FLAGS NAME", numbers in hex. */
export function parseIfInet6(text: string): Inet6Entry[] {
  const out: Inet6Entry[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*([0-9a-fA-F]{32})\s+([0-9a-fA-F]+)\s+([0-9a-fA-F]+)\s+([0-9a-fA-F]+)\s+([0-9a-fA-F]+)\s+(\S+)\s*$/.exec(line);
    if (!m) continue;
    const scope = parseInt(m[4]!, 16);
    out.push({
      iface: m[6]!,
      ifindex: parseInt(m[2]!, 16),
      address: formatIPv6(m[1]!),
      prefix: parseInt(m[3]!, 16),
      // The kernel's IPv6 scopes: 0x10 host, 0x20 link, 0x40 site (deprecated), 0 global.
      scope: scope === 0x10 ? "local" : scope === 0x20 ? "link" : "global",
    });
  }
  return out;
}

/** 32 hex digits as an IPv6 address in its canonical text form (RFC 5952). */
export function formatIPv6(hex: string): string {
  const groups: number[] = [];
  for (let i = 0; i < 32; i += 4) groups.push(parseInt(hex.slice(i, i + 4), 16));
  // The longest run of two or more zero groups becomes "::" (the first, on a tie).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const text = (g: number[]) => g.map((n) => n.toString(16)).join(":");
  return best < 0 ? text(groups) : `${text(groups.slice(0, best))}::${text(groups.slice(best + bestLen))}`;
}

/** One route alias of /proc/<pid>/net/fib_trie: a leaf's network, prefix, scope and type. */
export interface FibEntry {
  /** "Main", "Local", "Id 100"… */
  table: string;
  /** The leaf's address, as a 32-bit number. */
  network: number;
  prefix: number;
  /** universe, site, link, host, nowhere */
  scope: string;
  /** UNICAST, LOCAL, BROADCAST, … */
  type: string;
}

/**
 * /proc/<pid>/net/fib_trie: per table ("Main:", "Local:", "Id N:"), internal nodes
 * ("+-- NET/LEN …") and leaves ("|-- ADDR"), each leaf followed by its aliases
 * ("/LEN SCOPE TYPE [tos=N]"). Returns every alias with its leaf's address.
 */
export function parseFibTrie(text: string): FibEntry[] {
  const out: FibEntry[] = [];
  let table = "";
  let leaf: number | undefined;
  for (const line of text.split("\n")) {
    const head = /^(\S.*):\s*$/.exec(line);
    if (head) {
      table = head[1]!;
      leaf = undefined;
      continue;
    }
    const l = /^\s*\|--\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(line);
    if (l) {
      leaf = parseIPv4(l[1]!);
      continue;
    }
    const alias = /^\s*\/(\d+)\s+(\S+)\s+(\S+)/.exec(line);
    if (alias && leaf !== undefined) {
      out.push({ table, network: leaf, prefix: Number(alias[1]), scope: alias[2]!, type: alias[3]! });
      continue;
    }
    // An internal node ("+-- …") or anything else ends the current leaf's aliases.
    leaf = undefined;
  }
  return out;
}

/** One line of /proc/<pid>/net/route (the main table's IPv4 routes). */
export interface Route4 {
  iface: string;
  destination: number;
  gateway: number;
  flags: number;
  mask: number;
}

const RTF_GATEWAY = 0x2;

/**
 * /proc/<pid>/net/route: addresses are the kernel's 32-bit words in network byte order,
 * printed as host-order hex, so on a little-endian host "0007E70A" is 10.231.7.0.
 */
export function parseRoutes(text: string, order: "LE" | "BE" = endianness()): Route4[] {
  const out: Route4[] = [];
  const word = (hex: string) => {
    const n = parseInt(hex, 16) >>> 0;
    return order === "BE" ? n : (((n & 0xff) << 24) | ((n & 0xff00) << 8) | ((n >>> 8) & 0xff00) | (n >>> 24)) >>> 0;
  };
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !/^[0-9a-fA-F]{8}$/.test(f[1]!) || !/^[0-9a-fA-F]{8}$/.test(f[7]!)) continue;
    out.push({ iface: f[0]!, destination: word(f[1]!), gateway: word(f[2]!), flags: parseInt(f[3]!, 16), mask: word(f[7]!) });
  }
  return out;
}

export function parseIPv4(text: string): number {
  const p = text.split(".").map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join(".");
}

const maskOf = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
const prefixOf = (mask: number) => {
  let n = 0;
  for (let m = mask; m & 0x80000000; m = (m << 1) >>> 0) n++;
  return n;
};
const within = (addr: number, network: number, mask: number) => ((addr & mask) >>> 0) === ((network & mask) >>> 0);

export interface Inet4Entry {
  iface: string;
  address: string;
  prefix: number;
  scope: NetworkAddress["scope"];
}

/**
 * The IPv4 addresses of a namespace and their interfaces. Local addresses are fib_trie's
 * `/32 host LOCAL` aliases; an address's prefix is that of the longest connected route around
 * it (`link UNICAST`, or a `host LOCAL` range such as 127.0.0.0/8), else 32; its interface is
 * that of the matching gateway-less route in /proc/<pid>/net/route, else the loopback for a
 * LOCAL range, else the only non-loopback interface (see the module comment).
 */
export function ipv4Addresses(trie: FibEntry[], routes: Route4[], ifaces: { name: string; loopback: boolean }[]): Inet4Entry[] {
  const locals = [...new Set(trie.filter((e) => e.type === "LOCAL" && e.prefix === 32).map((e) => e.network))].sort((a, b) => a - b);
  const connected = trie.filter((e) => e.prefix < 32 && ((e.type === "UNICAST" && e.scope === "link") || e.type === "LOCAL"));
  const direct = routes.filter((r) => r.gateway === 0 && !(r.flags & RTF_GATEWAY));
  const loopback = ifaces.find((i) => i.loopback)?.name;
  const others = ifaces.filter((i) => !i.loopback);
  const out: Inet4Entry[] = [];
  for (const addr of locals) {
    let cover: FibEntry | undefined;
    for (const e of connected) if (within(addr, e.network, maskOf(e.prefix)) && (!cover || e.prefix > cover.prefix)) cover = e;
    let route: Route4 | undefined;
    for (const r of direct) {
      if (!within(addr, r.destination, r.mask)) continue;
      const exact = cover && r.destination === cover.network && r.mask === maskOf(cover.prefix);
      if (exact || !route || prefixOf(r.mask) > prefixOf(route.mask)) route = r;
      if (exact) break;
    }
    const iface = route?.iface ?? (cover?.type === "LOCAL" ? loopback : others.length === 1 ? others[0]!.name : undefined);
    if (!iface) continue;
    const scope = addr >>> 24 === 127 ? "local" : addr >>> 16 === 0xa9fe ? "link" : "global";
    out.push({ iface, address: formatIPv4(addr), prefix: cover?.prefix ?? 32, scope });
  }
  return out;
}

export interface MountEntry {
  major: number;
  minor: number;
  /** Where it is mounted, as the process sees its root. */
  mountPoint: string;
  fstype: string;
}

/** /proc/<pid>/mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL…] - FSTYPE SOURCE SUPER". */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    const dash = f.indexOf("-", 6);
    const dev = /^(\d+):(\d+)$/.exec(f[2] ?? "");
    if (dash < 0 || !dev || f[4] === undefined || f[dash + 1] === undefined) continue;
    out.push({ major: Number(dev[1]), minor: Number(dev[2]), mountPoint: unescapeMount(f[4]), fstype: f[dash + 1]! });
  }
  return out;
}

/** mountinfo escapes blanks, tabs, newlines and backslashes as \NNN octal. */
const unescapeMount = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The st_dev number of a major:minor pair, as glibc's makedev (and so Node's stat) encodes it. */
export function makedev(major: number, minor: number): number {
  return (minor & 0xff) + (major & 0xfff) * 0x100 + Math.floor(minor / 0x100) * 0x100000 + Math.floor(major / 0x1000) * 0x100000000000;
}

/** Where the container's sysfs is (preferring /sys) and the devices of all its sysfs mounts. */
export function containerSysfs(mounts: MountEntry[]): { mountPoint: string; devs: Set<number> } | undefined {
  const sysfs = mounts.filter((m) => m.fstype === "sysfs");
  if (!sysfs.length) return undefined;
  const at = sysfs.find((m) => m.mountPoint === "/sys") ?? sysfs[0]!;
  return { mountPoint: at.mountPoint, devs: new Set(sysfs.map((m) => makedev(m.major, m.minor))) };
}

/** An interface's attributes from sysfs. */
export interface LinkAttrs {
  hwaddr?: string;
  mtu?: number;
  flags?: number;
  ifindex?: number;
  iflink?: number;
}

const IFF_UP = 0x1;
const IFF_BROADCAST = 0x2;
const IFF_LOOPBACK = 0x8;
const IFF_POINTOPOINT = 0x10;

/** sysfs text as attributes; malformed values are dropped. */
export function linkAttrs(raw: { address?: string; mtu?: string; flags?: string; ifindex?: string; iflink?: string }): LinkAttrs {
  const int = (s: string | undefined, re: RegExp) => (s !== undefined && re.test(s) ? Number(s) : undefined);
  const address = raw.address?.toLowerCase();
  return {
    // No address (tunnels) or all zeros (loopback) is no address, as LXD shows it.
    hwaddr: address !== undefined && /^[0-9a-f]{2}(:[0-9a-f]{2})*$/.test(address) ? (/[1-9a-f]/.test(address) ? address : "") : undefined,
    mtu: int(raw.mtu, /^\d+$/),
    flags: int(raw.flags, /^0x[0-9a-fA-F]+$/),
    ifindex: int(raw.ifindex, /^\d+$/),
    iflink: int(raw.iflink, /^\d+$/),
  };
}

/** LXD's type names, from the interface flags. */
export function linkType(flags: number | undefined, name: string): NetworkInterfaceState["type"] {
  if (flags === undefined) return name === "lo" ? "loopback" : "unknown";
  if (flags & IFF_LOOPBACK) return "loopback";
  if (flags & IFF_POINTOPOINT) return "point-to-point";
  if (flags & IFF_BROADCAST) return "broadcast";
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Reading a container's state

/**
 * A file of the container's sysfs, read only if it is one: opened without following a final
 * symlink, without blocking, and checked to lie on one of `devs` (see the module comment).
 */
function readContainerSysfs(file: string, devs: ReadonlySet<number>): Promise<string | undefined> {
  return readSmall(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK, (st) => st.isFile() && devs.has(st.dev)).then((t) => t?.trim());
}

const ATTRS = ["address", "mtu", "flags", "ifindex", "iflink"] as const;
/** The loopback has no peer, so its indexes are not needed. */
const LO_ATTRS = ["address", "mtu", "flags"] as const;

/** An interface's attributes from its directory in the container's sysfs (files on `devs` only). */
export async function readLinkAttrs(dir: string, name: string, devs: ReadonlySet<number>): Promise<LinkAttrs> {
  const wanted = name === "lo" ? LO_ATTRS : ATTRS;
  const values = await Promise.all(wanted.map((a) => readContainerSysfs(`${dir}/${a}`, devs)));
  return linkAttrs(Object.fromEntries(wanted.map((a, i) => [a, values[i]])));
}


/** The interfaces of the network namespace of `pid` (a container's init), as LXD's state shows them. */
export async function networkState(pid: number, host: HostLinks = hostLinks): Promise<Record<string, NetworkInterfaceState>> {
  const proc = `/proc/${pid}`;
  const [dev, inet6, trie, route, mountinfo] = await Promise.all(
    ["net/dev", "net/if_inet6", "net/fib_trie", "net/route", "mountinfo"].map((f) => readSmall(`${proc}/${f}`)),
  );
  if (!dev) return {};
  const counters = parseNetDev(dev);
  const names = Object.keys(counters);
  const sysfs = mountinfo ? containerSysfs(parseMountinfo(mountinfo)) : undefined;
  // Interface names hold no "/" (the kernel refuses them), so each stays one path component.
  const attrs = await Promise.all(names.map((n) => (sysfs ? readLinkAttrs(`${proc}/root${sysfs.mountPoint}/class/net/${n}`, n, sysfs.devs) : ({} as LinkAttrs))));
  const byName = new Map(names.map((n, i) => [n, attrs[i]!]));
  const byIndex = new Map(names.flatMap((n, i) => (attrs[i]!.ifindex ? [[attrs[i]!.ifindex!, attrs[i]!] as const] : [])));

  const hostNames = await Promise.all(
    names.map((n) => {
      const a = byName.get(n)!;
      if (!a.ifindex || !a.iflink || a.iflink === a.ifindex) return "";
      // Both ends inside the container (a veth pair made in there): no host side.
      if (byIndex.get(a.iflink)?.iflink === a.ifindex) return "";
      return host.hostName(a.iflink, a.ifindex);
    }),
  );

  const addresses = new Map<string, NetworkAddress[]>(names.map((n) => [n, []]));
  const ifaces = names.map((n) => ({ name: n, loopback: linkType(byName.get(n)!.flags, n) === "loopback" }));
  for (const a of ipv4Addresses(trie ? parseFibTrie(trie) : [], route ? parseRoutes(route) : [], ifaces))
    addresses.get(a.iface)?.push({ family: "inet", address: a.address, netmask: String(a.prefix), scope: a.scope });
  for (const a of inet6 ? parseIfInet6(inet6) : [])
    addresses.get(a.iface)?.push({ family: "inet6", address: a.address, netmask: String(a.prefix), scope: a.scope });

  const out: Record<string, NetworkInterfaceState> = {};
  names.forEach((n, i) => {
    const a = byName.get(n)!;
    const addrs = addresses.get(n)!;
    out[n] = {
      addresses: addrs,
      counters: counters[n]!.counters,
      hwaddr: a.hwaddr ?? "",
      host_name: hostNames[i]!,
      mtu: a.mtu ?? 0,
      // Without sysfs, an interface with addresses is taken to be up.
      state: a.flags !== undefined ? (a.flags & IFF_UP ? "up" : "down") : addrs.length ? "up" : "down",
      type: linkType(a.flags, n),
    };
  });
  return out;
}
