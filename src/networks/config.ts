/**
 * The config keys of a managed `bridge` network, with LXD's names, defaults and meanings, and
 * the step from a stored config to the driver's ResolvedNetwork. Pure.
 */
import { badRequest } from "../api/errors.js";
import { parseBool, validateConfig, type KeyTable } from "../config/keys.js";
import type { AddressFamilySettings, ResolvedNetwork, StaticHost, ForwardRule } from "./driver.js";
import { contains, familyOf, lastAddress, parseInterfaceAddress, toBigInt, type Family } from "./ip.js";

const str = (description: string, validate?: (v: string) => void) => ({ type: "string" as const, description, validate });
const bool = (description: string) => ({ type: "bool" as const, description });

export const DEFAULT_DNS_DOMAIN = "lodge";

function cidrOf(family: Family) {
  return (v: string) => {
    if (v === "auto" || v === "none") return;
    const a = parseInterfaceAddress(v);
    if (a.prefix.family !== family) throw new Error(`"${v}" is not an IPv${family} address with a prefix length`);
    const max = family === 4 ? 30 : 126;
    if (a.prefix.length > max || a.prefix.length < (family === 4 ? 8 : 48))
      throw new Error(`prefix length /${a.prefix.length} is outside /${family === 4 ? 8 : 48}…/${max}`);
    if (a.value === a.prefix.base || (family === 4 && a.value === lastAddress(a.prefix)))
      throw new Error(`"${v}" is the subnet's ${a.value === a.prefix.base ? "network" : "broadcast"} address; give the bridge a host address such as ${family === 4 ? "10.0.3.1/24" : "fd42::1/64"}`);
  };
}

function ranges(family: Family) {
  return (v: string) => {
    for (const r of v.split(",")) {
      const [a, b, extra] = r.trim().split("-");
      if (!a || !b || extra !== undefined || familyOf(a) !== family || familyOf(b) !== family)
        throw new Error(`"${r}" is not a range of IPv${family} addresses like ${family === 4 ? "10.0.3.50-10.0.3.99" : "fd42::50-fd42::99"}`);
      if (toBigInt(a) > toBigInt(b)) throw new Error(`range "${r}" ends before it starts`);
    }
  };
}

const mac = (v: string) => {
  if (!/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(v)) throw new Error(`"${v}" is not a MAC address like 00:16:3e:12:34:56`);
  if (parseInt(v.slice(0, 2), 16) & 1) throw new Error(`"${v}" is a multicast MAC address`);
};

export const BRIDGE_KEYS: KeyTable = {
  "bridge.hwaddr": str("MAC address of the bridge", mac),
  "bridge.mtu": {
    type: "int",
    description: "MTU of the bridge",
    validate: (v) => {
      if (Number(v) < 576 || Number(v) > 65535) throw new Error("must be between 576 and 65535");
    },
  },
  "dns.domain": str("Domain of the network's DNS names", (v) => {
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i.test(v)) throw new Error(`"${v}" is not a DNS domain`);
  }),
  "dns.mode": str("DNS registration mode: managed, dynamic or none", (v) => {
    if (!["managed", "dynamic", "none"].includes(v)) throw new Error(`"${v}" is not one of managed, dynamic, none`);
  }),
  "ipv4.address": str("IPv4 address of the bridge with its prefix (CIDR), auto or none", cidrOf(4)),
  "ipv4.nat": bool("Masquerade IPv4 traffic leaving the network"),
  "ipv4.dhcp": bool("Serve DHCP on the network"),
  "ipv4.dhcp.ranges": str("Comma-separated IPv4 ranges given out by DHCP", ranges(4)),
  "ipv6.address": str("IPv6 address of the bridge with its prefix (CIDR), auto or none", cidrOf(6)),
  "ipv6.nat": bool("Masquerade IPv6 traffic leaving the network"),
  "ipv6.dhcp": bool("Send router advertisements and answer DHCPv6"),
  "ipv6.dhcp.stateful": bool("Give out IPv6 addresses with DHCPv6 (stateful) rather than SLAAC"),
  "ipv6.dhcp.ranges": str("Comma-separated IPv6 ranges for stateful DHCPv6", ranges(6)),
  "raw.dnsmasq": str("Extra dnsmasq configuration"),
};

/** LXD keys Lodge knows but does not implement: named as such, rather than "unknown". */
const NOT_YET = /^(bridge\.(driver|external_interfaces|mode)|fan\.|tunnel\.|maas\.|ipv[46]\.(routing|nat\.(address|order)|dhcp\.(expiry|gateway)|ovn\.)|security\.acls|dns\.search|dns\.zone|ipv[46]\.firewall)/;

/** Validates a bridge network's config (400 naming the first bad key); cross-key checks included. */
export function validateBridgeConfig(config: unknown): Record<string, string> {
  if (config !== undefined && config !== null && (typeof config !== "object" || Array.isArray(config))) throw badRequest("config must be a map of keys to values");
  const raw = (config ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(raw)) if (NOT_YET.test(k)) throw badRequest(`Network config key "${k}" is not supported by Lodge yet`);
  const out = validateConfig(BRIDGE_KEYS, raw, ["user."], "network");
  for (const family of [4, 6] as const) {
    const addr = out[`ipv${family}.address`];
    const r = out[`ipv${family}.dhcp.ranges`];
    if (!r || !addr || addr === "auto" || addr === "none") continue;
    const a = parseInterfaceAddress(addr);
    for (const range of r.split(","))
      for (const end of range.trim().split("-"))
        if (!contains(a.prefix, toBigInt(end), family)) throw badRequest(`Invalid value for network config key "ipv${family}.dhcp.ranges": ${end} is outside ${addr}`);
  }
  return out;
}

/**
 * The defaults LXD fills at create: both families `auto` when not given, and NAT on for a
 * family whose address was chosen automatically.
 */
export function fillBridgeDefaults(config: Record<string, string>): Record<string, string> {
  const out = { ...config };
  for (const f of ["ipv4", "ipv6"]) {
    if (out[`${f}.address`] === undefined || out[`${f}.address`] === "") out[`${f}.address`] = "auto";
    if (out[`${f}.address`] === "auto" && out[`${f}.nat`] === undefined) out[`${f}.nat`] = "true";
  }
  return out;
}

const on = (v: string | undefined, dflt: boolean) => (v === undefined || v === "" ? dflt : parseBool(v));

function family(config: Record<string, string>, f: Family): AddressFamilySettings | undefined {
  const addr = config[`ipv${f}.address`];
  if (!addr || addr === "none" || addr === "auto") return undefined;
  const dhcp = on(config[`ipv${f}.dhcp`], true);
  const rangeText = config[`ipv${f}.dhcp.ranges`];
  const dhcpRanges = rangeText ? rangeText.split(",").map((r) => r.trim().split("-") as [string, string]) : [];
  const out: AddressFamilySettings = { cidr: addr, nat: on(config[`ipv${f}.nat`], false), dhcp: f === 4 ? dhcp : dhcp && on(config["ipv6.dhcp.stateful"], false), dhcpRanges };
  if (f === 6) out.routerAdvertisements = dhcp;
  return out;
}

/** The driver's view of a stored network (its config already resolved: no `auto` left). */
export function resolveBridge(name: string, config: Record<string, string>, hosts: StaticHost[], forwards: ForwardRule[]): ResolvedNetwork {
  return {
    name,
    mtu: config["bridge.mtu"] ? Number(config["bridge.mtu"]) : undefined,
    hwaddr: config["bridge.hwaddr"] || undefined,
    ipv4: family(config, 4),
    ipv6: family(config, 6),
    dnsDomain: config["dns.domain"] || DEFAULT_DNS_DOMAIN,
    dnsMode: (config["dns.mode"] || "managed") as ResolvedNetwork["dnsMode"],
    rawDnsmasq: config["raw.dnsmasq"] || undefined,
    hosts,
    forwards,
  };
}

/** A network name is the bridge's interface name: the kernel's rules, and not one LXD reserves. */
export function checkNetworkName(name: unknown): string {
  if (typeof name !== "string" || name === "") throw badRequest("A network name is required");
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/.test(name))
    throw badRequest(`Invalid network name "${name}": 1 to 15 letters, digits, "_", "." or "-", starting with a letter or digit`);
  if (name === "none") throw badRequest('Invalid network name "none": the name is reserved');
  return name;
}
