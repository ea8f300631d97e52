/**
 * Network cards: interfaces under /sys/class/net that have a device (physical NICs; bridges,
 * veths and tunnels have none), one card per PCI function with its interfaces as ports, then
 * network-class PCI devices (0x02) without an interface (bound to vfio, say). SR-IOV virtual
 * functions nest under their parent card.
 *
 * LXD fills port details through ethtool ioctls; Lodge reads the same facts from sysfs: link
 * (carrier), speed and duplex. What only ethtool knows (supported modes, port and transceiver
 * type, auto-negotiation, firmware version) is left empty.
 */
import { basename, join } from "node:path";
import type { ResourcesNetwork, ResourcesNetworkCard, ResourcesNetworkCardPort, ResourcesNetworkCardPortInfiniband } from "../../api/resources.js";
import { idNames, type IdsDatabase } from "./ids.js";
import { PCI_DEVICES, pciIds } from "./pci.js";
import { deviceDir, deviceNumaNode, driverOf, exists, hexId, inOrder, int, list, naturalSort, omitEmpty, pciAddressOf, real, text, usbAddressOf } from "./sysfs.js";

/** ARPHRD_* link types (include/uapi/linux/if_arp.h) LXD names. */
const PROTOCOLS: Record<number, string> = { 1: "ethernet", 19: "ATM", 32: "infiniband" };

function infiniband(devicePath: string, port: number): ResourcesNetworkCardPortInfiniband {
  const ib: ResourcesNetworkCardPortInfiniband = {};
  const mad = join(devicePath, "infiniband_mad");
  for (const name of list(mad)) {
    if (int(join(mad, name, "port")) !== port + 1) continue;
    const dev = text(join(mad, name, "dev"));
    if (dev === undefined) continue;
    if (name.startsWith("issm")) Object.assign(ib, { issm_name: name, issm_device: dev });
    if (name.startsWith("umad")) Object.assign(ib, { mad_name: name, mad_device: dev });
  }
  const verbs = list(join(devicePath, "infiniband_verbs"));
  if (verbs.length === 1) {
    ib.verb_name = verbs[0]!;
    const dev = text(join(devicePath, "infiniband_verbs", verbs[0]!, "dev"));
    if (dev !== undefined) ib.verb_device = dev;
  }
  return ib;
}

function port(devicePath: string, ifacePath: string, name: string): ResourcesNetworkCardPort {
  const type = int(join(ifacePath, "type"));
  const p: ResourcesNetworkCardPort = {
    id: name,
    address: text(join(ifacePath, "address")) ?? "",
    port: Math.max(0, int(join(ifacePath, "dev_port")) ?? 0),
    protocol: type === undefined ? "" : (PROTOCOLS[type] ?? "unknown"),
    auto_negotiation: false,
    // Reading carrier fails (EINVAL) while the interface is down: no link then.
    link_detected: int(join(ifacePath, "carrier")) === 1,
  };
  if (p.link_detected) {
    // speed is -1 (or SPEED_UNKNOWN) when the driver does not know it, e.g. virtio.
    const speed = int(join(ifacePath, "speed"));
    if (speed !== undefined && speed > 0 && speed < 0xffffffff) p.link_speed = speed;
    const duplex = text(join(ifacePath, "duplex"));
    if (duplex === "full" || duplex === "half") p.link_duplex = duplex;
  }
  if (p.protocol === "infiniband" && exists(join(devicePath, "infiniband"))) p.infiniband = infiniband(devicePath, p.port);
  return omitEmpty(p, ["address"]);
}

function addDeviceInfo(root: string, devicePath: string, db: IdsDatabase, card: ResourcesNetworkCard): void {
  const dir = deviceDir(devicePath);
  if (exists(join(dir, "sriov_numvfs"))) {
    card.sriov = {
      current_vfs: int(join(dir, "sriov_numvfs")) ?? 0,
      maximum_vfs: int(join(dir, "sriov_totalvfs")) ?? 0,
      vfs: [],
    };
  }
  card.numa_node = deviceNumaNode(dir);
  card.usb_address = usbAddressOf(dir, root);
  card.vendor_id = hexId(join(dir, "vendor"));
  card.product_id = hexId(join(dir, "device"));
  const names = idNames(db, card.vendor_id, card.product_id);
  card.vendor = names.vendor;
  card.product = names.product;
  const drv = driverOf(dir);
  if (drv) {
    card.driver = drv.driver;
    card.driver_version = drv.version;
  }
  const net = join(devicePath, "net");
  if (exists(net)) card.ports = naturalSort(list(net)).map((name) => port(devicePath, join(net, name), name));
}

const OMIT: (keyof ResourcesNetworkCard)[] = [
  "driver",
  "driver_version",
  "ports",
  "pci_address",
  "vendor",
  "vendor_id",
  "product",
  "product_id",
  "firmware_version",
  "usb_address",
];

const ORDER: (keyof ResourcesNetworkCard)[] = [
  "driver",
  "driver_version",
  "ports",
  "sriov",
  "numa_node",
  "pci_address",
  "vendor",
  "vendor_id",
  "product",
  "product_id",
  "firmware_version",
  "usb_address",
];

export function networkResources(root = "/"): ResourcesNetwork {
  const db = pciIds(root);
  const known = new Set<string>();
  const cards: ResourcesNetworkCard[] = [];
  const vfs = new Map<string, ResourcesNetworkCard[]>();

  const add = (devicePath: string, card: ResourcesNetworkCard) => {
    addDeviceInfo(root, devicePath, db, card);
    card = inOrder(omitEmpty(card, OMIT), ORDER);
    const parent = real(join(devicePath, "physfn"));
    if (parent) vfs.set(basename(parent), [...(vfs.get(basename(parent)) ?? []), card]);
    else cards.push(card);
  };

  const classNet = join(root, "sys/class/net");
  for (const name of naturalSort(list(classNet))) {
    const devicePath = join(classNet, name, "device");
    if (!exists(devicePath)) continue;
    const card: ResourcesNetworkCard = { numa_node: 0 };
    const address = pciAddressOf(devicePath);
    if (address) {
      // A multi-port card's interfaces share the function: one card, all its ports.
      if (known.has(address)) continue;
      known.add(address);
      card.pci_address = address;
    }
    add(devicePath, card);
  }

  const pci = join(root, PCI_DEVICES);
  for (const address of list(pci)) {
    if (known.has(address)) continue;
    if (!(text(join(pci, address, "class")) ?? "").startsWith("0x02")) continue;
    add(join(pci, address), { numa_node: 0, pci_address: address });
  }

  let total = 0;
  for (const card of cards) {
    if (card.sriov) {
      card.sriov.vfs = vfs.get(card.pci_address ?? "") ?? [];
      total += card.sriov.vfs.length;
    }
    total++;
  }
  return { cards, total };
}
