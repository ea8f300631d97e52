/**
 * What the host enforces on an instance NIC's host-side interface (a veth end or a tap): MAC
 * and IPv4 source filtering (LXD's security.mac_filtering and security.ipv4_filtering) and the
 * rate out of the instance (limits.egress, a policer: what arrives faster is dropped) as an
 * nftables table of the bridge family, one per instance; the rate into the instance
 * (limits.ingress) as an htb qdisc on the interface itself, which goes with the interface.
 * (tc's own policer would do for egress, but kernels without act_police exist: these do.)
 *
 * The table is named after the instance (`lodge-nic-<instance>`), so it can be replaced whole
 * (atomically, with one `nft -f`) at every start or NIC change, and removed at stop and delete.
 */
import { writeFile } from "node:fs/promises";
import { run } from "./exec.js";

export interface NicPolicy {
  /** The host-side interface. */
  hostName: string;
  /** Frames from the instance must carry this source MAC (and ARP this sender MAC). */
  mac?: string;
  /** IPv4 packets from the instance must carry this source address (and ARP this sender address). */
  ipv4?: string;
  /** Rate into the instance (tc units: "10mbit"). */
  ingress?: string;
  /** Rate out of the instance. */
  egress?: string;
}

export const nicTableName = (owner: string) => `lodge-nic-${owner}`;

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;
const IPV4 = /^(\d{1,3}\.){3}\d{1,3}$/;
const RATE = /^\d+(\.\d+)?(bit|kbit|mbit|gbit|tbit)$/;

/** The nft script that replaces the owner's table (and only deletes it when no NIC filters). */
export function nicPolicyRuleset(owner: string, nics: readonly NicPolicy[]): string {
  const table = nicTableName(owner);
  const lines = [`table bridge ${table}`, `delete table bridge ${table}`];
  const filtered = nics.filter((n) => n.mac || n.ipv4 || n.egress);
  if (filtered.length === 0) return lines.join("\n") + "\n";
  lines.push(`table bridge ${table} {`, "  chain in {", "    type filter hook prerouting priority -200; policy accept;");
  for (const n of filtered) {
    if (!IFNAME.test(n.hostName)) throw new Error(`invalid interface name ${JSON.stringify(n.hostName)}`);
    const dev = `iifname "${n.hostName}"`;
    if (n.mac) {
      const mac = n.mac.toLowerCase();
      if (!MAC.test(mac)) throw new Error(`invalid MAC ${JSON.stringify(n.mac)}`);
      lines.push(`    ${dev} ether saddr != ${mac} drop`, `    ${dev} arp saddr ether != ${mac} drop`);
    }
    if (n.egress) {
      const bytes = Math.max(1, Math.floor(bitsPerSecond(n.egress) / 8));
      const burst = Math.max(16 * 1024, Math.floor(bytes / 8));
      lines.push(`    ${dev} limit rate over ${bytes} bytes/second burst ${burst} bytes drop`);
    }
    if (n.ipv4) {
      if (!IPV4.test(n.ipv4)) throw new Error(`invalid IPv4 address ${JSON.stringify(n.ipv4)}`);
      // A DHCP client speaks from 0.0.0.0 before it has its address; ARP probes too.
      lines.push(
        `    ${dev} ether type ip ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept`,
        `    ${dev} ether type ip ip saddr != ${n.ipv4} drop`,
        `    ${dev} ether type arp arp saddr ip != { 0.0.0.0, ${n.ipv4} } drop`,
      );
    }
  }
  lines.push("  }", "}");
  return lines.join("\n") + "\n";
}

/** Applies the filters of an instance's NICs (replacing what was there) and their rate limits. */
export async function applyNicPolicies(owner: string, nics: readonly NicPolicy[]): Promise<void> {
  const r = await run("nft", ["-f", "-"], { input: nicPolicyRuleset(owner, nics), allowFail: true, timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`cannot apply NIC filters: ${r.stderr.trim()}`);
  for (const n of nics) await applyRates(n);
}

/** Removes the instance's filter table; quiet when there is none. */
export async function removeNicPolicies(owner: string): Promise<void> {
  await run("nft", ["delete", "table", "bridge", nicTableName(owner)], { allowFail: true, timeoutMs: 10_000 });
}

async function tc(args: string[]): Promise<void> {
  const r = await run("tc", args, { allowFail: true, timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`tc ${args.join(" ")}: ${r.stderr.trim()}`);
}

/** Into the instance is out of the host-side interface: an htb class shapes it. */
async function applyRates(n: NicPolicy): Promise<void> {
  if (!IFNAME.test(n.hostName)) throw new Error(`invalid interface name ${JSON.stringify(n.hostName)}`);
  await run("tc", ["qdisc", "del", "dev", n.hostName, "root"], { allowFail: true });
  if (n.ingress) {
    if (!RATE.test(n.ingress)) throw new Error(`invalid rate ${JSON.stringify(n.ingress)}`);
    await tc(["qdisc", "add", "dev", n.hostName, "root", "handle", "1:", "htb", "default", "10"]);
    await tc(["class", "add", "dev", n.hostName, "parent", "1:", "classid", "1:10", "htb", "rate", n.ingress]);
  }
}

const MULT: Record<string, number> = { "": 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

/** A tc rate ("8mbit") in bits per second. */
export function bitsPerSecond(rate: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmgt]?)bit$/.exec(rate);
  if (!m) throw new Error(`invalid rate ${JSON.stringify(rate)}`);
  return Number(m[1]) * MULT[m[2]!]!;
}

/** LXD's rate syntax ("10Mbit", "1Gbit", "500kbit") in tc's lower-case units; throws on others. */
export function tcRate(value: string): string {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)bit$/i.exec(value.trim());
  if (!m) throw new Error(`"${value}" is not a bit rate such as 100Mbit`);
  return `${m[1]}${m[2]!.toLowerCase()}bit`;
}

/**
 * Lets a bridge port receive frames back out of the port they came in on (hairpin), so an
 * instance that reaches a forward or NAT address of its own network gets its replies: with
 * bridge-nf-call-iptables on, the reply is turned back at the host towards the same port, and
 * a bridge drops that unless the port says hairpin. LXD sets it on its bridged NICs too.
 */
export async function enableHairpin(hostName: string): Promise<void> {
  if (!IFNAME.test(hostName)) throw new Error(`invalid interface name ${JSON.stringify(hostName)}`);
  await writeFile(`/sys/class/net/${hostName}/brport/hairpin_mode`, "1").catch((e: NodeJS.ErrnoException) => {
    // Not a bridge port (p2p), or gone: nothing to set.
    if (e.code !== "ENOENT") throw e;
  });
}
