/**
 * What the host enforces on an instance NIC's host-side interface (a veth end or a tap): MAC
 * and IPv4 source filtering (LXD's security.mac_filtering and security.ipv4_filtering) as an
 * nftables table of the bridge family, one per instance, and rate limits (limits.ingress and
 * limits.egress) as tc qdiscs on the interface itself, which go with the interface.
 *
 * The table is named after the instance (`lodge-nic-<instance>`), so it can be replaced whole
 * (atomically, with one `nft -f`) at every start or NIC change, and removed at stop and delete.
 */
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
  const filtered = nics.filter((n) => n.mac || n.ipv4);
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

/**
 * Into the instance is out of the host-side interface: an htb class shapes it. Out of the
 * instance arrives on the host side: an ingress policer drops what exceeds the rate.
 */
async function applyRates(n: NicPolicy): Promise<void> {
  if (!IFNAME.test(n.hostName)) throw new Error(`invalid interface name ${JSON.stringify(n.hostName)}`);
  await run("tc", ["qdisc", "del", "dev", n.hostName, "root"], { allowFail: true });
  await run("tc", ["qdisc", "del", "dev", n.hostName, "ingress"], { allowFail: true });
  if (n.ingress) {
    if (!RATE.test(n.ingress)) throw new Error(`invalid rate ${JSON.stringify(n.ingress)}`);
    await tc(["qdisc", "add", "dev", n.hostName, "root", "handle", "1:", "htb", "default", "10"]);
    await tc(["class", "add", "dev", n.hostName, "parent", "1:", "classid", "1:10", "htb", "rate", n.ingress]);
  }
  if (n.egress) {
    if (!RATE.test(n.egress)) throw new Error(`invalid rate ${JSON.stringify(n.egress)}`);
    await tc(["qdisc", "add", "dev", n.hostName, "handle", "ffff:", "ingress"]);
    await tc(["filter", "add", "dev", n.hostName, "parent", "ffff:", "protocol", "all", "u32", "match", "u32", "0", "0", "police", "rate", n.egress, "burst", "256k", "drop", "flowid", ":1"]);
  }
}

/** LXD's rate syntax ("10Mbit", "1Gbit", "500kbit") in tc's lower-case units; throws on others. */
export function tcRate(value: string): string {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)bit$/i.exec(value.trim());
  if (!m) throw new Error(`"${value}" is not a bit rate such as 100Mbit`);
  return `${m[1]}${m[2]!.toLowerCase()}bit`;
}
