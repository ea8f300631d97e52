/**
 * NICs need something on the host: a bridged NIC its bridge, a macvlan NIC its host
 * interface, a NIC on a managed network that network. LXD checks this only when the instance
 * starts; Lodge also refuses a create or a device change that names a missing one, so the
 * mistake is reported on the request and nothing is made. The driver checks again at start
 * (a bridge may go away), with the same words instead of liblxc's "Failed to create the network".
 */
import { stat } from "node:fs/promises";
import { badRequest } from "../api/errors.js";
import type { NicSpec } from "./runconfig.js";

type Devices = Record<string, Record<string, string>>;

/** The managed networks, as the instance side needs them (NetworkService gives this). */
export interface ManagedNetworks {
  /** Why `device` (a NIC naming a managed network) cannot be used by `instance`, or undefined. */
  nicProblem(project: string, device: Record<string, string>, instance?: string): Promise<string | undefined>;
}

function badName(name: string): boolean {
  // The kernel's interface names: 1-15 bytes, no "/", ":" or blanks, not "." or "..".
  return !/^[^\s/:]{1,15}$/.test(name) || name === "." || name === "..";
}

/** Why `parent` cannot take a bridged NIC on this host, or undefined when it can. */
export async function nicParentProblem(parent: string, sysNet = "/sys/class/net"): Promise<string | undefined> {
  if (badName(parent)) return `parent ${JSON.stringify(parent)} is not a valid interface name`;
  const dir = await stat(`${sysNet}/${parent}`).catch(() => undefined);
  if (!dir) return `parent bridge "${parent}" does not exist on this host`;
  if (!(await stat(`${sysNet}/${parent}/bridge`).catch(() => undefined))?.isDirectory()) return `parent "${parent}" is not a bridge`;
  return undefined;
}

/** Why the host cannot give `nic` what it needs, or undefined. */
export async function nicHostProblem(nic: Pick<NicSpec, "type" | "parent">, sysNet = "/sys/class/net"): Promise<string | undefined> {
  if (nic.type === "p2p") return undefined;
  if (nic.type === "bridged") return nicParentProblem(nic.parent ?? "", sysNet);
  const parent = nic.parent ?? "";
  if (badName(parent)) return `parent ${JSON.stringify(parent)} is not a valid interface name`;
  if (!(await stat(`${sysNet}/${parent}`).catch(() => undefined))) return `parent interface "${parent}" does not exist on this host`;
  return undefined;
}

const NIC_KEYS = ["type", "nictype", "parent", "network", "ipv4.address", "ipv6.address"];

/**
 * Refuses (400) NICs whose bridge, host interface or managed network is missing, or whose
 * static address the network cannot give. With `before`, only devices that are new or
 * changed are checked, so an instance whose bridge went away can still be edited.
 */
export async function checkNicParents(devices: Devices, before: Devices = {}, opts: { networks?: ManagedNetworks; project?: string; instance?: string } = {}): Promise<void> {
  for (const [name, d] of Object.entries(devices)) {
    if (d.type !== "nic") continue;
    const old = before[name];
    if (old && NIC_KEYS.every((k) => old[k] === d[k])) continue;
    let problem: string | undefined;
    if (d.network) problem = opts.networks ? await opts.networks.nicProblem(opts.project ?? "default", d, opts.instance) : `network "${d.network}" not found`;
    else problem = await nicHostProblem({ type: d.nictype as NicSpec["type"], parent: d.parent });
    if (problem) throw badRequest(`Invalid device "${name}": ${problem}`);
  }
}
