/**
 * A running VM's state from the host's side, and the guest's when its agent answers.
 *
 * - CPU: QEMU's own CPU time (/proc/PID/stat): the guest's vCPUs are QEMU's threads, plus what
 *   QEMU spends emulating devices (under TCG, emulating the CPU itself).
 * - Memory: the guest's view (MemTotal - MemAvailable) when the agent answers; otherwise QEMU's
 *   resident memory, which is what the VM costs the host (guest RAM it has touched, plus
 *   QEMU's own). Peak and swap are always QEMU's.
 * - Network: each NIC's tap counters, turned around (what the tap receives the guest sent),
 *   under the NIC's name; with the agent, the guest's interfaces and addresses, each matched
 *   to its tap by MAC for host_name.
 */
import { readSmall } from "../../../sys/small-file.js";
import type { InstanceState, NetworkInterfaceState } from "../../driver.js";
import type { GuestState } from "./agent-api.js";
import { cpuTimeNs, processMemory } from "./process.js";
import type { TapDevice } from "./tap.js";

const COUNTERS = ["rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", "tx_packets", "tx_errors", "tx_dropped"] as const;

async function tapState(t: TapDevice): Promise<NetworkInterfaceState> {
  const dir = `/sys/class/net/${t.tap}`;
  const [values, mtu, operstate] = await Promise.all([
    Promise.all(COUNTERS.map(async (c) => Number((await readSmall(`${dir}/statistics/${c}`))?.trim() ?? 0))),
    readSmall(`${dir}/mtu`),
    readSmall(`${dir}/flags`),
  ]);
  const [rxB, rxP, rxE, rxD, txB, txP, txE, txD] = values as [number, number, number, number, number, number, number, number];
  return {
    addresses: [],
    // The guest sends what the tap receives.
    counters: {
      bytes_received: txB, packets_received: txP, errors_received: txE, packets_dropped_inbound: txD,
      bytes_sent: rxB, packets_sent: rxP, errors_sent: rxE, packets_dropped_outbound: rxD,
    },
    hwaddr: t.hwaddr,
    host_name: t.tap,
    mtu: Number(mtu?.trim() ?? 0) || 0,
    state: operstate && Number(operstate.trim()) & 1 ? "up" : "down",
    type: "broadcast",
  };
}

export async function vmState(pid: number, taps: TapDevice[], guest: GuestState | undefined): Promise<InstanceState> {
  const [cpu, mem, nics] = await Promise.all([cpuTimeNs(pid), processMemory(pid), Promise.all(taps.map(tapState))]);
  const network: Record<string, NetworkInterfaceState> = {};
  if (guest) {
    for (const [name, iface] of Object.entries(guest.network)) {
      const tap = nics.find((n) => n.hwaddr && n.hwaddr === iface.hwaddr.toLowerCase());
      network[name] = { ...iface, host_name: tap?.host_name ?? iface.host_name };
    }
  } else {
    taps.forEach((t, i) => (network[t.nic] = nics[i]!));
  }
  return {
    status: "Running",
    pid,
    processes: guest?.processes ?? 0,
    cpu: { usage_ns: cpu },
    memory: { usage: guest?.memory.usage ?? mem.rss, usage_peak: mem.peak, swap_usage: mem.swap },
    network,
  };
}
