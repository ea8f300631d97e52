/**
 * `lodge network attach|detach NETWORK INSTANCE …` and `attach-profile|detach-profile NETWORK
 * PROFILE …`: a nic device joining the holder to the network, added or removed with the same
 * ETag-guarded read-change-write as the device verbs. As lxc: the device is named after the
 * network unless a name is given; a managed network is joined by `network=`, a host interface
 * by `nictype=bridged|macvlan parent=`.
 */
import type { Command } from "commander";
import { UsageError } from "./exit.js";
import { globalsOf, withClient } from "./globals.js";
import { updateInstance } from "./instance-ref.js";
import { fetchNetwork } from "./network-ref.js";
import type { Network } from "./network-types.js";
import { updateProfile } from "./profile-ref.js";

type Devices = Record<string, Record<string, string>>;

/** The nic device that joins `network`, with `iface` as its name inside the instance. */
export function nicFor(network: Network, iface?: string): Record<string, string> {
  const nic: Record<string, string> = network.managed
    ? { type: "nic", network: network.name }
    : { type: "nic", nictype: network.type === "bridge" ? "bridged" : "macvlan", parent: network.name };
  if (iface !== undefined) nic.name = iface;
  return nic;
}

/** Adds `nic` as device `dev`; a device of that name already there is an error. */
export function addNic(devices: Devices, dev: string, nic: Record<string, string>, where: string): void {
  if (dev in devices) throw new UsageError(`Device "${dev}" already exists ${where}`);
  devices[dev] = nic;
}

const joins = (d: Record<string, string>, network: string) => d.type === "nic" && (d.network === network || d.parent === network);

/**
 * The device to remove for `detach`: the named one (which must be a nic on the network), else
 * the only nic on the network. `inherited` are devices the holder gets from its profiles.
 */
export function nicToDetach(devices: Devices, network: string, where: string, dev?: string, inherited: Devices = {}): string {
  if (dev !== undefined) {
    const d = devices[dev];
    if (!d) {
      if (inherited[dev]) throw new UsageError(`Device "${dev}" comes from a profile: detach it from the profile (lodge network detach-profile)`);
      throw new UsageError(`Device "${dev}" does not exist ${where}`);
    }
    if (!joins(d, network)) throw new UsageError(`Device "${dev}" ${where} is not a nic on network "${network}"`);
    return dev;
  }
  const found = Object.keys(devices).filter((n) => joins(devices[n]!, network));
  if (found.length > 1) throw new UsageError(`More than one device ${where} uses network "${network}" (${found.sort().join(", ")}): name the device`);
  if (found.length === 0) {
    const fromProfile = Object.keys(inherited).find((n) => joins(inherited[n]!, network));
    if (fromProfile) throw new UsageError(`Device "${fromProfile}" comes from a profile: detach it from the profile (lodge network detach-profile)`);
    throw new UsageError(`No device ${where} uses network "${network}"`);
  }
  return found[0]!;
}

export function registerNetworkAttach(network: Command): void {
  network
    .command("attach")
    .description("Attach an instance to a network: adds a nic device (named after the network unless DEVICE is given)")
    .argument("<network>", "Network name")
    .argument("<instance>", "Instance name")
    .argument("[device]", "Device name (default: the network's name)")
    .argument("[interface]", "Interface name inside the instance, e.g. eth1")
    .action(async (net: string, name: string, dev: string | undefined, iface: string | undefined, _opts, cmd: Command) => {
      const device = dev ?? net;
      await withClient(globalsOf(cmd), async (c) => {
        const nic = nicFor((await fetchNetwork(c, net)).network, iface);
        await updateInstance(c, name, (put) => addNic(put.devices, device, nic, `on instance "${name}"`));
      });
      process.stdout.write(`Device ${device} added to ${name}\n`);
    });

  network
    .command("attach-profile")
    .description("Attach a profile to a network: adds a nic device (named after the network unless DEVICE is given)")
    .argument("<network>", "Network name")
    .argument("<profile>", "Profile name")
    .argument("[device]", "Device name (default: the network's name)")
    .argument("[interface]", "Interface name inside instances, e.g. eth0")
    .action(async (net: string, name: string, dev: string | undefined, iface: string | undefined, _opts, cmd: Command) => {
      const device = dev ?? net;
      await withClient(globalsOf(cmd), async (c) => {
        const nic = nicFor((await fetchNetwork(c, net)).network, iface);
        await updateProfile(c, name, (put) => addNic(put.devices, device, nic, `in profile "${name}"`));
      });
      process.stdout.write(`Device ${device} added to ${name}\n`);
    });

  network
    .command("detach")
    .description("Detach an instance from a network: removes its nic device on the network")
    .argument("<network>", "Network name")
    .argument("<instance>", "Instance name")
    .argument("[device]", "Device name (needed when several use the network)")
    .action(async (net: string, name: string, dev: string | undefined, _opts, cmd: Command) => {
      let removed = "";
      await withClient(globalsOf(cmd), (c) =>
        updateInstance(c, name, (put, current) => {
          removed = nicToDetach(put.devices, net, `on instance "${name}"`, dev, current.expanded_devices ?? {});
          delete put.devices[removed];
        }),
      );
      process.stdout.write(`Device ${removed} removed from ${name}\n`);
    });

  network
    .command("detach-profile")
    .description("Detach a profile from a network: removes its nic device on the network")
    .argument("<network>", "Network name")
    .argument("<profile>", "Profile name")
    .argument("[device]", "Device name (needed when several use the network)")
    .action(async (net: string, name: string, dev: string | undefined, _opts, cmd: Command) => {
      let removed = "";
      await withClient(globalsOf(cmd), (c) =>
        updateProfile(c, name, (put) => {
          removed = nicToDetach(put.devices, net, `in profile "${name}"`, dev);
          delete put.devices[removed];
        }),
      );
      process.stdout.write(`Device ${removed} removed from ${name}\n`);
    });
}
