/**
 * The bridge interface through iproute2: made when missing, its MTU, MAC and global addresses
 * brought to what the network wants, and up. Current state is read with `ip -j` and only what
 * differs is changed, so a second apply() runs two reads and nothing else.
 */
import { createHash } from "node:crypto";
import { run } from "../../../sys/exec.js";
import { parseCidr, type Family } from "./cidr.js";

const IP_TIMEOUT_MS = 10_000;

interface IpLink {
  ifname: string;
  mtu: number;
  address?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string };
}

interface IpAddrInfo {
  family: "inet" | "inet6";
  local: string;
  prefixlen: number;
  scope: string;
}

export interface LinkWanted {
  name: string;
  mtu?: number;
  hwaddr: string;
  /** Global addresses with prefix, at most one per family. */
  cidrs: string[];
}

const ip = (args: string[], signal?: AbortSignal) => run("ip", args, { signal, timeoutMs: IP_TIMEOUT_MS });

/**
 * The MAC a bridge gets when the network names none: derived from its name, so it stays the
 * same across restarts (a bridge left to itself takes the lowest MAC of its ports, and changes
 * it as instances come and go, which breaks clients' ARP caches). Locally administered unicast.
 */
export function stableHwaddr(name: string): string {
  const b = createHash("sha256").update(`lodge bridge ${name}`).digest().subarray(0, 6);
  b[0] = (b[0]! & 0xfc) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/** The interface's details, or undefined when there is none of that name. */
export async function showLink(name: string, signal?: AbortSignal): Promise<IpLink | undefined> {
  const r = await run("ip", ["-j", "-d", "link", "show", "dev", name], { allowFail: true, signal, timeoutMs: IP_TIMEOUT_MS });
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as IpLink[])[0];
}

export async function showAddresses(name: string, signal?: AbortSignal): Promise<IpAddrInfo[]> {
  const r = await run("ip", ["-j", "addr", "show", "dev", name], { allowFail: true, signal, timeoutMs: IP_TIMEOUT_MS });
  if (r.code !== 0) return [];
  return (JSON.parse(r.stdout) as { addr_info?: IpAddrInfo[] }[])[0]?.addr_info ?? [];
}

/**
 * Makes the bridge when missing and sets MTU and MAC; refuses an interface of another kind.
 * Says whether it made the bridge, and whether the bridge is up.
 */
export async function ensureBridge(w: LinkWanted, signal?: AbortSignal): Promise<{ made: boolean; up: boolean }> {
  const link = await showLink(w.name, signal);
  if (!link) {
    await ip(["link", "add", w.name, ...(w.mtu !== undefined ? ["mtu", String(w.mtu)] : []), "address", w.hwaddr, "type", "bridge"], signal);
    return { made: true, up: false };
  }
  if (link.linkinfo?.info_kind !== "bridge") {
    throw new Error(`Interface "${w.name}" exists on the host and is not a bridge (${link.linkinfo?.info_kind ?? "physical"})`);
  }
  if (w.mtu !== undefined && link.mtu !== w.mtu) await ip(["link", "set", "dev", w.name, "mtu", String(w.mtu)], signal);
  if (link.address?.toLowerCase() !== w.hwaddr.toLowerCase()) await ip(["link", "set", "dev", w.name, "address", w.hwaddr], signal);
  return { made: false, up: link.flags?.includes("UP") ?? false };
}

/**
 * Brings the bridge's global addresses to `cidrs`: adds the missing (IPv6 with nodad: the
 * subnet is ours, and waiting for DAD would delay dnsmasq's bind), removes every other global
 * one (an address family turned off, an address changed). Link-local addresses are the kernel's.
 * Returns whether it changed anything.
 */
export async function syncAddresses(name: string, cidrs: string[], signal?: AbortSignal): Promise<boolean> {
  const wanted = new Map(cidrs.map((c) => parseCidr(c)).map((c) => [`${c.address}/${c.prefix}`, c.family]));
  const present = (await showAddresses(name, signal)).filter((a) => a.scope === "global");
  const have = new Set<string>();
  let changed = false;
  for (const a of present) {
    const key = `${parseCidr(`${a.local}/${a.prefixlen}`).address}/${a.prefixlen}`;
    if (wanted.has(key)) have.add(key);
    else {
      await ip(["addr", "del", `${a.local}/${a.prefixlen}`, "dev", name], signal);
      changed = true;
    }
  }
  for (const [cidr, family] of wanted) {
    if (have.has(cidr)) continue;
    // IPv4 with its subnet's broadcast address, as `ip` leaves it out unless asked.
    await ip([familyFlag(family), "addr", "add", cidr, ...(family === 4 ? ["broadcast", "+"] : ["nodad"]), "dev", name], signal);
    changed = true;
  }
  return changed;
}

function familyFlag(f: Family): string {
  return f === 4 ? "-4" : "-6";
}

export async function setUp(name: string, signal?: AbortSignal): Promise<void> {
  await ip(["link", "set", "dev", name, "up"], signal);
}

/** Deletes the bridge; quiet when it is gone, and never touches an interface of another kind. */
export async function deleteBridge(name: string): Promise<void> {
  const link = await showLink(name);
  if (link?.linkinfo?.info_kind !== "bridge") return;
  await run("ip", ["link", "del", "dev", name], { timeoutMs: IP_TIMEOUT_MS });
}
