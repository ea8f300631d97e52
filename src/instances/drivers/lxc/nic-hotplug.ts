/**
 * NICs added to and removed from a running container, as liblxc makes them at start: a veth
 * pair whose host end (its `hostName`) is a port of the parent bridge (bridged) or left alone
 * (p2p), or a macvlan interface on the parent (macvlan); the container's end goes into its
 * network namespace, renamed to the NIC's name, with its MAC and MTU, and up. Removal deletes
 * the container's end, which takes a veth pair with it.
 *
 * The container end is made under a temporary name on the host, so a failure at any step leaves
 * nothing behind (the pair is deleted). Commands: iproute2's `ip`, and util-linux's `nsenter`
 * for the steps inside the container's network namespace (its host pid's).
 */
import { randomBytes } from "node:crypto";
import { access } from "node:fs/promises";
import { run } from "../../../sys/exec.js";
import { randomHostName } from "../../devices/nic.js";
import { InstanceDriverError } from "../../driver.js";
import { nicHostProblem } from "../../nic-parents.js";
import type { NicSpec } from "../../runconfig.js";

/** `ip ARGS` on the host, or inside the network namespace of `pid`. */
function ipRun(args: string[], pid?: number) {
  return pid === undefined ? run("ip", args, { allowFail: true }) : run("nsenter", [`--net=/proc/${pid}/ns/net`, "--", "ip", ...args], { allowFail: true });
}

async function ip(args: string[], what: string, pid?: number): Promise<void> {
  const r = await ipRun(args, pid);
  if (r.code !== 0) throw new InstanceDriverError(`${what}: ${r.stderr.trim() || `ip exited with ${r.code}`}`);
}

/** Whether the host (a file look) or the container (`ip` in its netns) has an interface `name`. */
async function hasLink(name: string, pid?: number): Promise<boolean> {
  if (pid === undefined) return access(`/sys/class/net/${name}`).then(() => true, () => false);
  return (await ipRun(["link", "show", "dev", name], pid)).code === 0;
}

/** Adds `nic` to the container whose init is `pid`. */
export async function addNic(pid: number, nic: NicSpec): Promise<void> {
  const what = `nic ${nic.name}`;
  const problem = await nicHostProblem(nic);
  if (problem) throw new InstanceDriverError(`${what}: ${problem}`);
  if (await hasLink(nic.name, pid)) throw new InstanceDriverError(`${what}: the container already has an interface named ${nic.name}`);
  const peer = `lodge${randomBytes(5).toString("hex")}`; // 15 characters, the kernel's limit
  const mtu = nic.mtu ? ["mtu", String(nic.mtu)] : [];
  let host: string | undefined;
  if (nic.type === "macvlan") {
    await ip(["link", "add", "link", nic.parent!, "name", peer, ...mtu, "type", "macvlan", "mode", "bridge"], `${what}: cannot make its macvlan interface on ${nic.parent}`);
  } else {
    host = nic.hostName ?? randomHostName();
    if (await hasLink(host)) throw new InstanceDriverError(`${what}: the host already has an interface named ${host}`);
    await ip(["link", "add", host, ...mtu, "type", "veth", "peer", "name", peer, ...mtu], `${what}: cannot make its veth pair`);
  }
  try {
    if (host && nic.type === "bridged") await ip(["link", "set", "dev", host, "master", nic.parent!, "up"], `${what}: cannot attach ${host} to ${nic.parent}`);
    else if (host) await ip(["link", "set", "dev", host, "up"], `${what}: cannot set ${host} up`);
    await ip(["link", "set", "dev", peer, "netns", String(pid)], `${what}: cannot move it into the container`);
    const addr = nic.hwaddr ? ["address", nic.hwaddr] : [];
    await ip(["link", "set", "dev", peer, "name", nic.name, ...addr, "up"], `${what}: cannot set it up in the container`, pid);
  } catch (e) {
    // Deleting either end of a veth deletes the pair, wherever the other end is by now.
    if (!host || (await ipRun(["link", "del", "dev", host])).code !== 0) {
      if ((await ipRun(["link", "del", "dev", peer])).code !== 0) await ipRun(["link", "del", "dev", peer], pid);
    }
    throw e;
  }
}

/** Removes `nic` from the container whose init is `pid` (nothing to do when it is not there). */
export async function removeNic(pid: number, nic: NicSpec): Promise<void> {
  if (await hasLink(nic.name, pid)) await ip(["link", "del", "dev", nic.name], `nic ${nic.name}: cannot remove it`, pid);
  else if (nic.hostName && (await hasLink(nic.hostName))) await ip(["link", "del", "dev", nic.hostName], `nic ${nic.name}: cannot remove ${nic.hostName}`);
}
