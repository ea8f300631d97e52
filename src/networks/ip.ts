/**
 * Addresses and prefixes of both families as integers, so overlap and containment are
 * arithmetic. Pure.
 */
import { isIPv4, isIPv6 } from "node:net";

export type Family = 4 | 6;

/** A prefix: its first address as an integer, its length, and its family. */
export interface Prefix {
  family: Family;
  /** The network address (host bits cleared). */
  base: bigint;
  length: number;
}

export const BITS: Record<Family, number> = { 4: 32, 6: 128 };

export function familyOf(addr: string): Family | undefined {
  return isIPv4(addr) ? 4 : isIPv6(addr) ? 6 : undefined;
}

export function toBigInt(addr: string): bigint {
  if (isIPv4(addr)) return addr.split(".").reduce((n, p) => (n << 8n) | BigInt(Number(p)), 0n);
  if (!isIPv6(addr)) throw new Error(`"${addr}" is not an IP address`);
  let s = addr;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = toBigInt(v4[1]!);
    s = `${s.slice(0, -v4[1]!.length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = s.includes("::") ? s.split("::") : [s, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g || "0", 16)), 0n);
}

export function fromBigInt(n: bigint, family: Family): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join(".");
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16));
  // The longest run of zero groups (two or more) becomes "::", as RFC 5952 writes it.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

/** The netmask of a prefix length as an integer. */
export function mask(family: Family, length: number): bigint {
  const bits = BITS[family];
  return ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - length)) - 1n);
}

/** Parses "a.b.c.d/n" or "x::y/n" (an address without a length is a host prefix). */
export function parsePrefix(text: string): Prefix {
  const [addr, len, extra] = text.split("/");
  const family = familyOf(addr ?? "");
  if (!family || extra !== undefined) throw new Error(`"${text}" is not an address with a prefix length (like 10.0.3.1/24)`);
  const length = len === undefined ? BITS[family] : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!(length >= 0 && length <= BITS[family])) throw new Error(`"${text}" has an invalid prefix length`);
  return { family, base: toBigInt(addr!) & mask(family, length), length };
}

/** An interface address in CIDR form: the address itself and its prefix. */
export interface InterfaceAddress {
  address: string;
  value: bigint;
  prefix: Prefix;
}

export function parseInterfaceAddress(text: string): InterfaceAddress {
  const prefix = parsePrefix(text);
  const address = text.split("/")[0]!;
  return { address, value: toBigInt(address), prefix };
}

export function overlaps(a: Prefix, b: Prefix): boolean {
  if (a.family !== b.family) return false;
  const len = Math.min(a.length, b.length);
  const m = mask(a.family, len);
  return (a.base & m) === (b.base & m);
}

export function contains(p: Prefix, addr: bigint, family: Family): boolean {
  return p.family === family && (addr & mask(family, p.length)) === p.base;
}

/** The last address of the prefix (IPv4's broadcast). */
export function lastAddress(p: Prefix): bigint {
  return p.base | ((1n << BigInt(BITS[p.family] - p.length)) - 1n);
}

export function formatPrefix(p: Prefix): string {
  return `${fromBigInt(p.base, p.family)}/${p.length}`;
}
