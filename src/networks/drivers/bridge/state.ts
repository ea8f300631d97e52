/**
 * A bridge's state as LXD's /1.0/networks/<name>/state shows it: MAC, MTU, up or down, kind and
 * counters from /sys/class/net/<name>/ (file reads), addresses from `ip -j addr` (sysfs has no
 * IPv4 addresses).
 */
import { readdir } from "node:fs/promises";
import type { NetworkState } from "../../driver.js";
import { readSmall } from "../../../sys/small-file.js";
import { showAddresses } from "./link.js";

const IFF_UP = 0x1;
const IFF_BROADCAST = 0x2;
const IFF_LOOPBACK = 0x8;
const IFF_POINTOPOINT = 0x10;

export async function readState(name: string, sysDir = "/sys/class/net"): Promise<NetworkState | undefined> {
  const dir = `${sysDir}/${name}`;
  const read = async (f: string) => (await readSmall(`${dir}/${f}`))?.trim();
  const num = async (f: string) => Number((await read(f)) ?? 0) || 0;
  const flagsText = await read("flags");
  if (flagsText === undefined) return undefined;
  const flags = parseInt(flagsText, 16);
  const [hwaddr, mtu, rxBytes, txBytes, rxPackets, txPackets, addrs] = await Promise.all([
    read("address"),
    num("mtu"),
    num("statistics/rx_bytes"),
    num("statistics/tx_bytes"),
    num("statistics/rx_packets"),
    num("statistics/tx_packets"),
    showAddresses(name),
  ]);
  return {
    addresses: addrs.map((a) => ({
      family: a.family,
      address: a.local,
      netmask: String(a.prefixlen),
      scope: a.scope === "host" ? "local" : a.scope,
    })),
    counters: { bytes_received: rxBytes, bytes_sent: txBytes, packets_received: rxPackets, packets_sent: txPackets },
    hwaddr: hwaddr ?? "",
    mtu,
    state: flags & IFF_UP ? "up" : "down",
    type: flags & IFF_LOOPBACK ? "loopback" : flags & IFF_POINTOPOINT ? "point-to-point" : flags & IFF_BROADCAST ? "broadcast" : "unknown",
    bridge: await bridgeState(dir),
    bond: null,
    vlan: null,
    ovn: null,
  };
}

/** A bridge's id, STP, forward delay, VLAN settings and ports, from its sysfs directory. */
async function bridgeState(dir: string): Promise<NetworkState["bridge"]> {
  const read = async (f: string) => (await readSmall(`${dir}/bridge/${f}`))?.trim();
  const id = await read("bridge_id");
  if (id === undefined) return null;
  const [stp, delay, vlanDefault, vlanFiltering, ports] = await Promise.all([
    read("stp_state"),
    read("forward_delay"),
    read("default_pvid"),
    read("vlan_filtering"),
    readdir(`${dir}/brif`).catch(() => [] as string[]),
  ]);
  return {
    id,
    stp: stp !== undefined && stp !== "0",
    // sysfs has it in hundredths of a second (USER_HZ); LXD shows the same number.
    forward_delay: Number(delay ?? 0) || 0,
    vlan_default: Number(vlanDefault ?? 0) || 0,
    vlan_filtering: vlanFiltering === "1",
    upper_devices: ports.sort(),
  };
}
