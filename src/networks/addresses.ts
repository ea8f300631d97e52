/**
 * A network's subnets and the static addresses of the NICs on it: `auto` picks an unused
 * subnet, a given one must not overlap the host's or another network's, and a NIC's static
 * address must fall inside its network (and not be the gateway's).
 */
import { badRequest } from "../api/errors.js";
import type { DocumentStore } from "../state/store.js";
import { parseInterfaceAddress } from "./ip.js";
import { networkPrefix, type NetworkRecord } from "./record.js";
import { conflict as prefixConflict, pickIPv4, pickIPv6, type TakenPrefix } from "./subnets.js";
import type { NicUse } from "./users.js";

/**
 * Replaces `auto` addresses with unused subnets, and refuses given ones that overlap a host
 * route, a host address or another network. Addresses unchanged from `before` are not
 * checked again (the network's own routes would match them).
 */
export async function resolveAddresses(
  store: DocumentStore,
  hostPrefixes: () => Promise<TakenPrefix[]>,
  project: string,
  name: string,
  config: Record<string, string>,
  before: Record<string, string>,
): Promise<Record<string, string>> {
  const out = { ...config };
  const wanted = (f: string) => out[`${f}.address`];
  const needsCheck = ["ipv4", "ipv6"].filter((f) => wanted(f) && wanted(f) !== "none" && wanted(f) !== before[`${f}.address`]);
  if (needsCheck.length === 0) return out;
  const taken = [...(await hostPrefixes()), ...(await otherNetworks(store, project, name))];
  for (const f of needsCheck) {
    const value = wanted(f)!;
    if (value === "auto") {
      const picked = f === "ipv4" ? pickIPv4(taken) : pickIPv6(taken);
      if (!picked) throw badRequest(`No unused ${f === "ipv4" ? "IPv4 /24 in 10.0.0.0/8" : "IPv6 /64 in fd42::/16"} is left on this host; set ${f}.address yourself`);
      out[`${f}.address`] = picked;
      continue;
    }
    const clash = prefixConflict(parseInterfaceAddress(value).prefix, taken, name);
    if (clash) throw badRequest(`Invalid value for network config key "${f}.address": ${value} overlaps ${clash.what}`);
  }
  return out;
}

/** The subnets of every other network of every project, including ones being created. */
async function otherNetworks(store: DocumentStore, project: string, name: string): Promise<TakenPrefix[]> {
  const out: TakenPrefix[] = [];
  for (const doc of await store.list<NetworkRecord>(networkPrefix())) {
    const r = doc.value;
    if (r.project === project && r.name === name) continue;
    for (const f of ["ipv4", "ipv6"]) {
      const a = r.config[`${f}.address`];
      if (a && a !== "none" && a !== "auto") out.push({ prefix: parseInterfaceAddress(a).prefix, what: `network ${r.name} (${a})`, dev: `lodge-network:${r.name}` });
    }
  }
  return out;
}

/** After a subnet change, instance NICs with static addresses must still fit. */
export function checkStaticAddresses(uses: readonly NicUse[], r: NetworkRecord): void {
  for (const u of uses.filter((x) => x.network === r.name && x.instance)) {
    for (const f of ["ipv4", "ipv6"] as const) {
      const addr = u.nic[`${f}.address`];
      if (!addr) continue;
      const problem = staticAddressProblem(r, f, addr);
      if (problem) throw badRequest(`Instance "${u.instance}" device "${u.device}": ${problem}`);
    }
  }
}

/** Why a NIC's static address does not fit the network, or undefined. */
export function staticAddressProblem(r: NetworkRecord, f: "ipv4" | "ipv6", addr: string): string | undefined {
  const cidr = r.config[`${f}.address`];
  if (!cidr || cidr === "none") return `${f}.address ${addr} is set but network "${r.name}" has no ${f === "ipv4" ? "IPv4" : "IPv6"} subnet`;
  const net = parseInterfaceAddress(cidr);
  let a;
  try {
    a = parseInterfaceAddress(addr);
  } catch {
    return `${f}.address ${JSON.stringify(addr)} is not an ${f === "ipv4" ? "IPv4" : "IPv6"} address`;
  }
  if (a.prefix.family !== net.prefix.family || a.prefix.length !== (f === "ipv4" ? 32 : 128)) return `${f}.address ${JSON.stringify(addr)} is not a single ${f === "ipv4" ? "IPv4" : "IPv6"} address`;
  const inside = ((a.value ^ net.prefix.base) >> BigInt((f === "ipv4" ? 32 : 128) - net.prefix.length)) === 0n;
  if (!inside) return `${f}.address ${addr} is outside network "${r.name}" (${cidr})`;
  if (a.value === net.value) return `${f}.address ${addr} is the network's own (gateway) address`;
  return undefined;
}
