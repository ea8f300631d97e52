/**
 * Bridged NICs need their parent bridge on the host. LXD checks this only when the instance
 * starts; Lodge also refuses a create or a device change that names a missing parent, so the
 * mistake is reported on the request and nothing is made. The driver checks again at start
 * (a bridge may go away), with the same words instead of liblxc's "Failed to create the network".
 */
import { stat } from "node:fs/promises";
import { badRequest } from "../api/errors.js";

type Devices = Record<string, Record<string, string>>;

/** Why `parent` cannot take a bridged NIC on this host, or undefined when it can. */
export async function nicParentProblem(parent: string, sysNet = "/sys/class/net"): Promise<string | undefined> {
  // The kernel's interface names: 1-15 bytes, no "/", ":" or blanks, not "." or "..".
  if (!/^[^\s/:]{1,15}$/.test(parent) || parent === "." || parent === "..") return `parent ${JSON.stringify(parent)} is not a valid interface name`;
  const dir = await stat(`${sysNet}/${parent}`).catch(() => undefined);
  if (!dir) return `parent bridge "${parent}" does not exist on this host`;
  if (!(await stat(`${sysNet}/${parent}/bridge`).catch(() => undefined))?.isDirectory()) return `parent "${parent}" is not a bridge`;
  return undefined;
}

/**
 * Refuses (400) bridged NICs whose parent the host lacks. With `before`, only devices that are
 * new or changed are checked, so an instance whose bridge went away can still be edited.
 */
export async function checkNicParents(devices: Devices, before: Devices = {}): Promise<void> {
  for (const [name, d] of Object.entries(devices)) {
    if (d.type !== "nic" || d.nictype !== "bridged" || !d.parent) continue;
    const old = before[name];
    if (old && old.type === d.type && old.nictype === d.nictype && old.parent === d.parent) continue;
    const problem = await nicParentProblem(d.parent);
    if (problem) throw badRequest(`Invalid device "${name}": ${problem}`);
  }
}
