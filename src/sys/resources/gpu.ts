/**
 * GPUs: cards under /sys/class/drm, then display-class PCI devices (0x03) without a DRM node;
 * SR-IOV virtual functions nest under their parent card. NVIDIA details come from
 * /proc/driver/nvidia (LXD also asks nvidia-container-cli; Lodge spawns nothing here).
 */
import { basename, join } from "node:path";
import type { ResourcesGPU, ResourcesGPUCard, ResourcesGPUCardDRM, ResourcesGPUCardMdev, ResourcesGPUCardNvidia } from "../../api/resources.js";
import { idNames, type IdsDatabase } from "./ids.js";
import { PCI_DEVICES, pciIds } from "./pci.js";
import { deviceNumaNode, driverOf, exists, hexId, inOrder, int, isDir, list, naturalSort, omitEmpty, pciAddressOf, real, text, usbAddressOf } from "./sysfs.js";

/** NVIDIA cards by PCI address, from /proc/driver/nvidia/gpus/<address>/information. */
function nvidiaCards(root: string): Map<string, ResourcesGPUCardNvidia> {
  const out = new Map<string, ResourcesGPUCardNvidia>();
  const gpus = join(root, "proc/driver/nvidia/gpus");
  for (const address of list(gpus)) {
    const info = text(join(gpus, address, "information"));
    if (info === undefined) continue;
    const card: ResourcesGPUCardNvidia = { brand: "", model: "", card_name: "", card_device: "" };
    for (const line of info.split("\n")) {
      const i = line.indexOf(":");
      if (i < 0) continue;
      const key = line.slice(0, i).trim();
      const value = line.slice(i + 1).trim();
      if (key === "Model") {
        card.model = value;
        card.brand = value.split(" ")[0] ?? "";
      } else if (key === "Device Minor") {
        card.card_name = `nvidia${value}`;
        card.card_device = `195:${value}`;
      }
    }
    out.set(address, card);
  }
  return out;
}

function drmInfo(dir: string): ResourcesGPUCardDRM {
  const drm: ResourcesGPUCardDRM = { id: 0, card_name: "", card_device: "" };
  for (const name of naturalSort(list(dir))) {
    const dev = text(join(dir, name, "dev")) ?? "";
    const card = /^card(\d+)$/.exec(name);
    if (card) {
      drm.id = Number(card[1]);
      drm.card_name = name;
      drm.card_device = dev;
    } else if (name.startsWith("controlD")) {
      drm.control_name = name;
      drm.control_device = dev;
    } else if (name.startsWith("renderD")) {
      drm.render_name = name;
      drm.render_device = dev;
    }
  }
  return omitEmpty(drm, ["control_name", "control_device", "render_name", "render_device"]);
}

function mdevInfo(dir: string): Record<string, ResourcesGPUCardMdev> {
  const out: Record<string, ResourcesGPUCardMdev> = {};
  for (const name of list(dir)) {
    const d = join(dir, name);
    out[name] = omitEmpty(
      {
        api: text(join(d, "device_api")) ?? "",
        available: int(join(d, "available_instances")) ?? 0,
        name: text(join(d, "name")) ?? "",
        description: text(join(d, "description")) ?? "",
        devices: list(join(d, "devices")),
      },
      ["name", "description"],
    );
  }
  return out;
}

function addDeviceInfo(root: string, devicePath: string, db: IdsDatabase, nvidia: Map<string, ResourcesGPUCardNvidia>, card: ResourcesGPUCard): void {
  // A card whose `device` is itself a directory (a USB display adapter) is described below it.
  if (isDir(join(devicePath, "device"))) return addDeviceInfo(root, join(devicePath, "device"), db, nvidia, card);

  if (exists(join(devicePath, "sriov_numvfs"))) {
    card.sriov = {
      current_vfs: int(join(devicePath, "sriov_numvfs")) ?? 0,
      maximum_vfs: int(join(devicePath, "sriov_totalvfs")) ?? 0,
      vfs: [],
    };
  }
  card.numa_node = deviceNumaNode(devicePath);
  if (exists(join(devicePath, "device", "busnum"))) {
    card.usb_address = usbAddressOf(join(devicePath, "device"), root);
  } else {
    card.vendor_id = hexId(join(devicePath, "vendor"));
    card.product_id = hexId(join(devicePath, "device"));
    const names = idNames(db, card.vendor_id, card.product_id);
    card.vendor = names.vendor;
    card.product = names.product;
  }
  const drv = driverOf(devicePath);
  if (drv) {
    card.driver = drv.driver;
    card.driver_version = drv.version;
  }
  if (card.driver === "nvidia" && card.pci_address) card.nvidia = nvidia.get(card.pci_address) ?? nvidia.get(`0000${card.pci_address}`);
  if (exists(join(devicePath, "drm"))) card.drm = drmInfo(join(devicePath, "drm"));
  if (exists(join(devicePath, "mdev_supported_types"))) card.mdev = mdevInfo(join(devicePath, "mdev_supported_types"));
}

const OMIT: (keyof ResourcesGPUCard)[] = ["driver", "driver_version", "mdev", "pci_address", "vendor", "vendor_id", "product", "product_id", "usb_address"];
const ORDER: (keyof ResourcesGPUCard)[] = [
  "driver",
  "driver_version",
  "drm",
  "sriov",
  "nvidia",
  "mdev",
  "numa_node",
  "pci_address",
  "vendor",
  "vendor_id",
  "product",
  "product_id",
  "usb_address",
];

export function gpuResources(root = "/"): ResourcesGPU {
  const db = pciIds(root);
  const nvidia = nvidiaCards(root);
  const known = new Set<string>();
  const cards: ResourcesGPUCard[] = [];
  const vfs = new Map<string, ResourcesGPUCard[]>();

  const add = (devicePath: string, card: ResourcesGPUCard) => {
    addDeviceInfo(root, devicePath, db, nvidia, card);
    card = inOrder(omitEmpty(card, OMIT), ORDER);
    const parent = real(join(devicePath, "physfn"));
    if (parent) vfs.set(basename(parent), [...(vfs.get(basename(parent)) ?? []), card]);
    else cards.push(card);
  };

  const drm = join(root, "sys/class/drm");
  for (const name of naturalSort(list(drm))) {
    // Cards only (not renderD*), and only main entries (card0-HDMI-A-1 has no dev).
    if (!name.startsWith("card") || !exists(join(drm, name, "dev"))) continue;
    const devicePath = join(drm, name, "device");
    const card: ResourcesGPUCard = { numa_node: 0 };
    const address = pciAddressOf(devicePath);
    if (address) {
      if (known.has(address)) continue;
      known.add(address);
      card.pci_address = address;
    }
    add(devicePath, card);
  }

  const pci = join(root, PCI_DEVICES);
  for (const address of list(pci)) {
    if (known.has(address)) continue;
    if (!(text(join(pci, address, "class")) ?? "").startsWith("0x03")) continue;
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
