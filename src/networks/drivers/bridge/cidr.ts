/**
 * Address arithmetic for the bridge driver: an address as a bigint, a CIDR's subnet, and the
 * DHCP range a subnet gets when none is given. Pure; IPv4 and IPv6 alike.
 */
import { isIPv4, isIPv6 } from "node:net";

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  /** The address as written, in canonical form ("fd42:1::1", never "fd42:0001:0:0::1"). */
  address: string;
  prefix: number;
  /** The subnet, canonical, with prefix: "10.1.2.0/24", "fd42:1::/64". */
  subnet: string;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

export function familyOf(address: string): Family | undefined {
  return isIPv4(address) ? 4 : isIPv6(address) ? 6 : undefined;
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

function mask(family: Family, prefix: number): bigint {
  const bits = BITS[family];
  return ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
}

export function toBigInt(address: string): bigint {
  if (isIPv4(address)) return address.split(".").reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  if (!isIPv6(address)) throw new Error(`Invalid IP address "${address}"`);
  let text = address;
  // An embedded IPv4 tail ("::ffff:1.2.3.4") as two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = toBigInt(v4[1]!);
    text = text.slice(0, -v4[1]!.length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

export function fromBigInt(n: bigint, family: Family): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => ((n >> s) & 0xffn).toString()).join(".");
  const groups = [...Array(8).keys()].map((i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn));
  // RFC 5952: the longest run (first of equals) of two or more zero groups becomes "::".
  let best = { at: -1, len: 1 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len) best = { at: i, len: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.at < 0) return hex.join(":");
  return `${hex.slice(0, best.at).join(":")}::${hex.slice(best.at + best.len).join(":")}`;
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
