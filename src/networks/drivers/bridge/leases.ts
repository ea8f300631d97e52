/**
 * A network's leases: dnsmasq's lease file (dynamic) and the static hosts list. Pure parsing.
 *
 * dnsmasq's lease file has one lease per line, `expiry hwaddr address hostname clientid`, with
 * "*" for an unknown hostname or client id and expiry 0 for a lease that never ends. DHCPv6
 * leases follow a `duid <server duid>` line and carry the IAID where the MAC would be; their
 * MAC is read from the client's DUID when it is of a link-layer type (DUID-LLT or DUID-LL over
 * Ethernet), as it is for every common client.
 */
import type { Lease, StaticHost } from "../../driver.js";
import { canonicalAddress, familyOf } from "./cidr.js";

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function parseLeaseFile(text: string): Lease[] {
  const out: Lease[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[0] === "duid") continue;
    const [expiry, hw, address, hostname, clientId] = f as [string, string, string, string, string | undefined];
    const family = familyOf(address);
    if (!family || !/^\d+$/.test(expiry)) continue;
    const hwaddr = family === 4 ? hw.toLowerCase() : macFromDuid(clientId);
    if (family === 4 && !MAC.test(hwaddr)) continue;
    const lease: Lease = { hostname: hostname === "*" ? "" : hostname, hwaddr, address: canonicalAddress(address), type: "dynamic" };
    if (expiry !== "0") lease.expires = Number(expiry);
    out.push(lease);
  }
  return out;
}

/** The MAC inside a DHCPv6 client id (a DUID, "00:01:00:01:…"), or "" when it holds none. */
export function macFromDuid(clientId: string | undefined): string {
  if (!clientId || clientId === "*") return "";
  const b = clientId.toLowerCase().split(":");
  const type = b.slice(0, 2).join("");
  const hwType = b.slice(2, 4).join("");
  if (hwType !== "0001") return "";
  // DUID-LLT: type, hardware type, 4 bytes of time, MAC. DUID-LL: type, hardware type, MAC.
  const mac = type === "0001" && b.length === 14 ? b.slice(8) : type === "0003" && b.length === 10 ? b.slice(4) : [];
  const text = mac.join(":");
  return MAC.test(text) ? text : "";
}

/**
 * Static leases (one per configured address of each host) followed by the dynamic ones that
 * are not the same lease again: a host with a fixed address also appears in dnsmasq's file once
 * it has asked for it, and is listed once, as static.
 */
export function mergeLeases(hosts: StaticHost[], dynamic: Lease[]): Lease[] {
  const statics: Lease[] = [];
  for (const h of hosts) {
    for (const address of [h.ipv4, h.ipv6]) {
      if (address && familyOf(address)) statics.push({ hostname: h.name, hwaddr: h.hwaddr.toLowerCase(), address: canonicalAddress(address), type: "static" });
    }
  }
  const isStatic = new Set(statics.map((l) => l.address));
  return [...statics, ...dynamic.filter((l) => !isStatic.has(l.address))];
}
