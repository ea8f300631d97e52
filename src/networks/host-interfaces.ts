/**
 * The host's own interfaces, listed as LXD lists unmanaged networks: read from /sys/class/net
 * (no process spawned).
 */
import { readdir, readFile, stat } from "node:fs/promises";

export interface HostInterface {
  name: string;
  /** LXD's words: loopback, bridge, bond, vlan, physical, unknown. */
  type: string;
}

const exists = (p: string) => stat(p).then(() => true, () => false);

export async function hostInterfaces(sysNet = "/sys/class/net"): Promise<HostInterface[]> {
  const names = await readdir(sysNet).catch(() => [] as string[]);
  const out: HostInterface[] = [];
  for (const name of names.sort()) {
    const type = await interfaceType(`${sysNet}/${name}`);
    if (type) out.push({ name, type });
  }
  return out;
}

export async function hostInterface(name: string, sysNet = "/sys/class/net"): Promise<HostInterface | undefined> {
  if (!/^[^\s/:]{1,15}$/.test(name) || name === "." || name === "..") return undefined;
  const type = await interfaceType(`${sysNet}/${name}`);
  return type ? { name, type } : undefined;
}

async function interfaceType(dir: string): Promise<string | undefined> {
  const arpType = (await readFile(`${dir}/type`, "utf8").catch(() => "")).trim();
  if (!arpType) return undefined;
  if (arpType === "772") return "loopback";
  if (await exists(`${dir}/bridge`)) return "bridge";
  if (await exists(`${dir}/bonding`)) return "bond";
  const uevent = await readFile(`${dir}/uevent`, "utf8").catch(() => "");
  if (/^DEVTYPE=vlan$/m.test(uevent)) return "vlan";
  if (arpType === "1") return "physical";
  return "unknown";
}
