/**
 * A VM's NICs on the host: one tap device each, made before QEMU starts (persistent, owned by
 * root, single queue), a port of the NIC's bridge when it has one, and given to QEMU by name.
 * The taps made are recorded in the VM's directory, so a stop after a lodged restart (or after
 * QEMU died) removes exactly those, and the state reads their counters.
 *
 * Only bridged and p2p NICs exist for VMs: a macvlan NIC would need macvtap, which is refused
 * with a clear error rather than half made.
 */
import { createHash } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { run } from "../../../sys/exec.js";
import { InstanceDriverError } from "../../driver.js";
import { nicHostProblem } from "../../nic-parents.js";
import type { NicSpec } from "../../runconfig.js";

const IP_TIMEOUT_MS = 10_000;
const ip = (args: string[]) => run("ip", args, { timeoutMs: IP_TIMEOUT_MS });

export interface TapDevice {
  /** The NIC's name inside (eth0). */
  nic: string;
  tap: string;
  hwaddr: string;
  bridge?: string;
}

/** `tap` and 8 hex digits of a hash of VM and NIC: stable, unique enough, and within IFNAMSIZ. */
export function tapName(vm: string, nic: string): string {
  return `tap${createHash("sha256").update(`${vm}\0${nic}`).digest("hex").slice(0, 8)}`;
}

/** The NIC's MAC, or one derived from VM and NIC names (LXD's 00:16:3e prefix) when it has none. */
export function nicHwaddr(vm: string, nic: NicSpec): string {
  if (nic.hwaddr) return nic.hwaddr.toLowerCase();
  const b = createHash("sha256").update(`lodge vm ${vm} ${nic.name}`).digest();
  return ["00", "16", "3e", ...[...b.subarray(0, 3)].map((x) => x.toString(16).padStart(2, "0"))].join(":");
}

/**
 * Makes the taps of a VM's NICs, recorded in `record` as they are made; on failure removes the
 * ones made and throws naming the NIC.
 */
export async function makeTaps(vm: string, nics: NicSpec[], record: string): Promise<TapDevice[]> {
  const made: TapDevice[] = [];
  try {
    for (const nic of nics) {
      if (nic.type === "macvlan") throw new InstanceDriverError(`nic ${nic.name}: macvlan NICs are not supported for virtual machines yet; use a bridge`);
      const problem = await nicHostProblem(nic);
      if (problem) throw new InstanceDriverError(`nic ${nic.name}: ${problem}`);
      const dev: TapDevice = { nic: nic.name, tap: nic.hostName ?? tapName(vm, nic.name), hwaddr: nicHwaddr(vm, nic), bridge: nic.type === "bridged" ? nic.parent : undefined };
      // A tap left by a QEMU that died is ours (the name is derived from this VM): made anew.
      await removeTap(dev.tap);
      await ip(["tuntap", "add", "dev", dev.tap, "mode", "tap"]);
      made.push(dev);
      await writeFile(record, JSON.stringify(made));
      if (nic.mtu) await ip(["link", "set", "dev", dev.tap, "mtu", String(nic.mtu)]);
      if (dev.bridge) await ip(["link", "set", "dev", dev.tap, "master", dev.bridge]);
      await ip(["link", "set", "dev", dev.tap, "up"]);
    }
    return made;
  } catch (e) {
    await removeTaps(record);
    throw e;
  }
}

/** The taps recorded for a VM (none when the file is missing or unreadable). */
export async function recordedTaps(record: string): Promise<TapDevice[]> {
  const text = await readFile(record, "utf8").catch(() => undefined);
  if (!text) return [];
  try {
    return JSON.parse(text) as TapDevice[];
  } catch {
    return [];
  }
}

/** Removes the recorded taps and the record. */
export async function removeTaps(record: string): Promise<void> {
  for (const t of await recordedTaps(record)) await removeTap(t.tap);
  await rm(record, { force: true });
}

/** How long a tap may stay attached to the QEMU that was just killed. */
const DETACH_TIMEOUT_MS = 5_000;

/** Whether the interface exists and is a tun/tap device. */
async function isTap(name: string): Promise<boolean> {
  const r = await run("ip", ["-j", "-d", "link", "show", "dev", name], { allowFail: true, timeoutMs: IP_TIMEOUT_MS });
  if (r.code !== 0) return false;
  return (JSON.parse(r.stdout) as { linkinfo?: { info_kind?: string } }[])[0]?.linkinfo?.info_kind === "tun";
}

/**
 * Deletes a tap device; quiet when it is gone, and never touches an interface of another kind.
 * A killed QEMU's main thread turns zombie (which is when it counts as exited) before its other
 * threads have let go of their file descriptors, and a tap still attached refuses deletion
 * (EBUSY): the delete is retried until the tap is gone, for a few seconds at most.
 */
async function removeTap(name: string): Promise<void> {
  const deadline = Date.now() + DETACH_TIMEOUT_MS;
  for (let delay = 5; await isTap(name); delay = Math.min(delay * 2, 200)) {
    const r = await run("ip", ["tuntap", "del", "dev", name, "mode", "tap"], { allowFail: true, timeoutMs: IP_TIMEOUT_MS });
    if (r.code !== 0 && Date.now() >= deadline) return;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}
