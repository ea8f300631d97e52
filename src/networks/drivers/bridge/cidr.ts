/**
 * Address arithmetic for the bridge driver: an address as a bigint, a CIDR's subnet, and the
 * DHCP range a subnet gets when none is given. Pure; IPv4 and IPv6 alike.
 */
import { BITS, familyOf, fromBigInt, mask, toBigInt, type Family } from "../../ip.js";

export { familyOf, toBigInt, fromBigInt, type Family };

export interface Cidr {
  family: Family;
  /** The address as written, in canonical form ("fd42:1::1", never "fd42:0001:0:0::1"). */
  address: string;
  prefix: number;
  /** The subnet, canonical, with prefix: "10.1.2.0/24", "fd42:1::/64". */
  subnet: string;
}


/** "10.1.2.1/24" → its parts; throws on anything else (a hostile or broken value never reaches a config file). */
export function parseCidr(cidr: string): Cidr {
  const m = /^([0-9a-fA-F.:]+)\/(\d{1,3})$/.exec(cidr);
  const family = m ? familyOf(m[1]!) : undefined;
  const prefix = m ? Number(m[2]) : NaN;
  if (!m || !family || prefix > BITS[family]) throw new Error(`Invalid address with prefix "${cidr}"`);
  const n = toBigInt(m[1]!);
  const net = n & mask(family, prefix);
  return { family, address: fromBigInt(n, family), prefix, subnet: `${fromBigInt(net, family)}/${prefix}` };
}

/** The canonical text of an address (RFC 5952 for IPv6); throws when it is not one. */
export function canonicalAddress(address: string): string {
  const family = familyOf(address);
  if (!family) throw new Error(`Invalid IP address "${address}"`);
  return fromBigInt(toBigInt(address), family);
}

/**
 * The DHCP ranges of a subnet when none are configured: every host address but the bridge's
 * own, as LXD does (10.1.2.1/24 → 10.1.2.2-10.1.2.254). IPv4 leaves out the network and
 * broadcast addresses; IPv6 the subnet-router anycast address (the first). A bridge address in
 * the middle splits the range in two.
 */
export function defaultRanges(cidr: string): [string, string][] {
  const c = parseCidr(cidr);
  const bits = BITS[c.family];
  const size = 1n << BigInt(bits - c.prefix);
  const net = toBigInt(c.subnet.split("/")[0]!);
  // /31 and /32 (/127, /128) have no room for clients beside the bridge.
  if (size < 4n) return [];
  const first = net + 1n;
  const last = c.family === 4 ? net + size - 2n : net + size - 1n;
  const own = toBigInt(c.address);
  const out: [bigint, bigint][] = [];
  if (own < first || own > last) out.push([first, last]);
  else {
    if (own > first) out.push([first, own - 1n]);
    if (own < last) out.push([own + 1n, last]);
  }
  return out.map(([a, b]) => [fromBigInt(a, c.family), fromBigInt(b, c.family)]);
}
