/**
 * Which subnets are taken on this host, read from the host's own tables (every routing table
 * and every interface address, through `ip -j`), and the choice of an unused one for `auto`.
 * Nothing here sends a packet: LXD 5.0.2 pings candidate addresses, Lodge decides from what
 * the kernel already says, which is faster and leaves no trace on the wire.
 */
import { randomBytes, randomInt } from "node:crypto";
import { run } from "../sys/exec.js";
import { formatPrefix, fromBigInt, overlaps, parsePrefix, toBigInt, type Family, type Prefix } from "./ip.js";

/** A prefix in use on the host, and where it was seen (for the error message). */
export interface TakenPrefix {
  prefix: Prefix;
  /** "route 10.1.0.0/16 via eth0", "address 192.168.1.5/24 on eth0", "network lodgebr0". */
  what: string;
  /** The interface it belongs to, when it belongs to one. */
  dev?: string;
}

interface IpRoute {
  dst?: string;
  dev?: string;
  type?: string;
  table?: string;
}

interface IpAddr {
  ifname: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** Routes (all tables) and interface addresses of both families. */
export async function hostPrefixes(): Promise<TakenPrefix[]> {
  const [r4, r6, addrs] = await Promise.all([
    run("ip", ["-j", "-4", "route", "show", "table", "all"]),
    run("ip", ["-j", "-6", "route", "show", "table", "all"]),
    run("ip", ["-j", "addr", "show"]),
  ]);
  return [...routePrefixes(JSON.parse(r4.stdout || "[]"), 4), ...routePrefixes(JSON.parse(r6.stdout || "[]"), 6), ...addressPrefixes(JSON.parse(addrs.stdout || "[]"))];
}

/** Routes other than default ones; multicast and link-local routes name no subnet one could pick. */
export function routePrefixes(routes: IpRoute[], family: Family): TakenPrefix[] {
  const out: TakenPrefix[] = [];
  for (const r of routes) {
    if (!r.dst || r.dst === "default" || r.type === "multicast" || r.type === "broadcast") continue;
    let prefix: Prefix;
    try {
      prefix = parsePrefix(r.dst);
    } catch {
      continue;
    }
    if (prefix.family !== family || prefix.length === 0) continue;
    out.push({ prefix, what: `route ${formatPrefix(prefix)}${r.dev ? ` on ${r.dev}` : ""}${r.table && r.table !== "main" ? ` (table ${r.table})` : ""}`, dev: r.dev });
  }
  return out;
}

export function addressPrefixes(links: IpAddr[]): TakenPrefix[] {
  const out: TakenPrefix[] = [];
  for (const l of links)
    for (const a of l.addr_info ?? []) {
      if (a.family !== "inet" && a.family !== "inet6") continue;
      try {
        const prefix = parsePrefix(`${a.local}/${a.prefixlen}`);
        out.push({ prefix, what: `address ${a.local}/${a.prefixlen} on ${l.ifname}`, dev: l.ifname });
      } catch {
        /* an address ip prints that we cannot read: nothing to compare against */
      }
    }
  return out;
}

/** The first taken prefix that `p` overlaps, ignoring those on interface `own` (the network's own bridge). */
export function conflict(p: Prefix, taken: readonly TakenPrefix[], own?: string): TakenPrefix | undefined {
  return taken.find((t) => t.dev !== own && overlaps(p, t.prefix) && !isLinkLocal(t.prefix));
}

function isLinkLocal(p: Prefix): boolean {
  return p.family === 6 && overlaps(p, parsePrefix("fe80::/10")) && p.length >= 10;
}

/**
 * An unused IPv4 /24 inside 10.0.0.0/8, returned as the bridge's address ("10.x.y.1/24"), as
 * LXD picks: random candidates first (two hosts rarely pick the same), then a scan, so a
 * crowded host still gets one when any is left.
 */
export function pickIPv4(taken: readonly TakenPrefix[], random = (n: number) => randomInt(n)): string | undefined {
  const free = (i: number) => !conflict({ family: 4, base: toBigInt("10.0.0.0") + (BigInt(i) << 8n), length: 24 }, taken);
  const make = (i: number) => `${fromBigInt(toBigInt("10.0.0.0") + (BigInt(i) << 8n) + 1n, 4)}/24`;
  for (let k = 0; k < 100; k++) {
    const i = random(65536);
    if (free(i)) return make(i);
  }
  for (let i = 0; i < 65536; i++) if (free(i)) return make(i);
  return undefined;
}

/** A random unique-local /64 (fd42::/16, as LXD uses), returned as the bridge's address "fd42:…::1/64". */
export function pickIPv6(taken: readonly TakenPrefix[], bytes = (n: number) => randomBytes(n)): string | undefined {
  for (let k = 0; k < 100; k++) {
    const b = bytes(6);
    const base = (0xfd42n << 112n) | (BigInt(`0x${b.toString("hex")}`) << 64n);
    if (!conflict({ family: 6, base, length: 64 }, taken)) return `${fromBigInt(base + 1n, 6)}/64`;
  }
  return undefined;
}
