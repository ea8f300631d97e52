/**
 * What the network verbs print, as lxc 5.0.2 prints it: the columns of `network list` and
 * `network list-leases`, and the text of `network info`. Pure: unit-tested.
 */
import { yesNo, type Column } from "./output.js";
import type { Network, NetworkLease, NetworkState } from "./network-types.js";

export const NETWORK_COLUMNS: Column<Network>[] = [
  { header: "NAME", value: (n) => n.name },
  { header: "TYPE", value: (n) => n.type },
  { header: "MANAGED", value: (n) => yesNo(n.managed) },
  { header: "IPV4", value: (n) => n.config?.["ipv4.address"] ?? "" },
  { header: "IPV6", value: (n) => n.config?.["ipv6.address"] ?? "" },
  { header: "DESCRIPTION", value: (n) => n.description ?? "" },
  { header: "USED BY", value: (n) => String(n.used_by?.length ?? 0) },
  { header: "STATE", value: (n) => (n.status ?? "").toUpperCase() },
];

export const LEASE_COLUMNS: Column<NetworkLease>[] = [
  { header: "HOSTNAME", value: (l) => l.hostname },
  { header: "MAC ADDRESS", value: (l) => l.hwaddr },
  { header: "IP ADDRESS", value: (l) => l.address },
  { header: "TYPE", value: (l) => l.type.toUpperCase() },
];

/** The networks `network list` shows, by name: lxc leaves out loopback and unknown interfaces. */
export function listedNetworks(all: readonly Network[]): Network[] {
  return all.filter((n) => n.type !== "loopback" && n.type !== "unknown").sort((a, b) => naturalCompare(a.name, b.name));
}

/** Leases ordered as lxc orders its rows: naturally, column after column. */
export function sortedLeases(all: readonly NetworkLease[]): NetworkLease[] {
  const row = (l: NetworkLease) => LEASE_COLUMNS.map((c) => c.value(l));
  return [...all].sort((a, b) => compareRows(row(a), row(b)));
}

function compareRows(a: string[], b: string[]): number {
  for (let i = 0; i < a.length; i++) {
    const d = naturalCompare(a[i] ?? "", b[i] ?? "");
    if (d !== 0) return d;
  }
  return 0;
}

/** "c2" before "c10": runs of digits compare as numbers, the rest by code unit. */
export function naturalCompare(a: string, b: string): number {
  const parts = (s: string) => s.match(/\d+|\D+/g) ?? [];
  const pa = parts(a);
  const pb = parts(b);
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    if (x === y) continue;
    if (/^\d/.test(x) && /^\d/.test(y)) {
      const d = Number(x) - Number(y);
      if (d !== 0) return d;
    }
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}

/** Bytes as lxc's network info prints them (decimal units, two decimals): "1.50kB". */
export function siByteSize(n: number): string {
  if (n < 1000) return `${n}B`;
  let v = n;
  for (const unit of ["kB", "MB", "GB", "TB", "PB"]) {
    v /= 1000;
    if (v < 1000) return `${v.toFixed(2)}${unit}`;
  }
  return `${(v / 1000).toFixed(2)}EB`;
}

/** The text of `network info NAME`, as `lxc network info` prints it. */
export function networkInfo(name: string, s: NetworkState): string {
  const lines = [`Name: ${name}`, `MAC address: ${s.hwaddr ?? ""}`, `MTU: ${s.mtu}`, `State: ${s.state}`, `Type: ${s.type}`];
  if (s.addresses?.length) {
    lines.push("", "IP addresses:");
    for (const a of s.addresses) lines.push(`  ${a.family}\t${a.address}/${a.netmask} (${a.scope})`);
  }
  const c = s.counters ?? { bytes_received: 0, bytes_sent: 0, packets_received: 0, packets_sent: 0 };
  lines.push(
    "",
    "Network usage:",
    `  Bytes received: ${siByteSize(c.bytes_received)}`,
    `  Bytes sent: ${siByteSize(c.bytes_sent)}`,
    `  Packets received: ${c.packets_received}`,
    `  Packets sent: ${c.packets_sent}`,
  );
  const b = s.bridge;
  if (b) {
    lines.push(
      "",
      "Bridge:",
      `  ID: ${b.id}`,
      `  STP: ${b.stp}`,
      `  Forward delay: ${b.forward_delay}`,
      `  Default VLAN ID: ${b.vlan_default}`,
      `  VLAN filtering: ${b.vlan_filtering}`,
      `  Upper devices: ${(b.upper_devices ?? []).join(", ")}`,
    );
  }
  if (s.vlan) lines.push("", "VLAN:", `  Lower device: ${s.vlan.lower_device}`, `  VLAN ID: ${s.vlan.vid}`);
  return lines.join("\n") + "\n";
}
