/**
 * The kernel settings a bridge network needs, written to /proc/sys directly (no sysctl spawned)
 * and only where they differ, so a converged host sees reads alone.
 */
import { readdir, writeFile } from "node:fs/promises";
import { readSmall } from "../../../sys/small-file.js";

const PROC = "/proc/sys/net";

async function read(key: string): Promise<string | undefined> {
  return (await readSmall(`${PROC}/${key}`))?.trim();
}

/** Writes `value` unless the key holds it already; returns whether it wrote. */
async function set(key: string, value: string): Promise<boolean> {
  if ((await read(key)) === value) return false;
  await writeFile(`${PROC}/${key}`, value);
  return true;
}

/**
 * Routing between the bridge and the rest of the host, as LXD turns it on. Turning on IPv6
 * forwarding makes the kernel ignore router advertisements on every interface whose accept_ra
 * is 1, which would take the host's own IPv6 default route away when it expires; those are set
 * to 2 (accept even when forwarding) first, as LXD does.
 */
export async function enableForwarding(ipv6: boolean): Promise<void> {
  await set("ipv4/ip_forward", "1");
  if (!ipv6 || (await read("ipv6/conf/all/forwarding")) === "1") return;
  const ifaces = await readdir(`${PROC}/ipv6/conf`).catch(() => [] as string[]);
  for (const iface of ifaces) {
    if (iface === "all") continue;
    if ((await read(`ipv6/conf/${iface}/accept_ra`)) === "1") await set(`ipv6/conf/${iface}/accept_ra`, "2").catch(() => false);
  }
  await set("ipv6/conf/all/forwarding", "1");
}

/**
 * The bridge's own IPv6 settings: with an IPv6 subnet it is the router of that subnet, so it
 * takes no router advertisements, makes no SLAAC addresses of its own (dnsmasq's RAs would
 * otherwise configure the bridge itself) and runs no DAD (the subnet is ours); without one,
 * IPv6 is off on it, as on lxdbr0 with ipv6.address=none.
 */
export async function configureBridgeIPv6(name: string, ipv6: boolean): Promise<void> {
  if ((await read(`ipv6/conf/${name}/disable_ipv6`)) === undefined) {
    if (ipv6) throw new Error(`IPv6 is not available on this host (no ${PROC}/ipv6/conf/${name})`);
    return;
  }
  if (!ipv6) {
    await set(`ipv6/conf/${name}/disable_ipv6`, "1");
    return;
  }
  await set(`ipv6/conf/${name}/disable_ipv6`, "0");
  await set(`ipv6/conf/${name}/accept_ra`, "0");
  await set(`ipv6/conf/${name}/autoconf`, "0");
  // Its link-local address, the source of its router advertisements, usable the moment the
  // first port brings carrier (not a second later, after the first router solicitations).
  await set(`ipv6/conf/${name}/accept_dad`, "0");
}
