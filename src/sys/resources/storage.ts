/**
 * Disks: block devices under /sys/class/block that have a device (loop, zram and device-mapper
 * nodes have none), with their partitions; details from sysfs, udev's database
 * (/run/udev/data/b<major>:<minor>) and the /dev/disk/by-path and by-id links.
 */
import { dirname, join } from "node:path";
import type { ResourcesStorage, ResourcesStorageDisk, ResourcesStorageDiskPartition } from "../../api/resources.js";
import { deviceNumaNode, exists, int, linkName, linkTarget, list, naturalSort, omitEmpty, pciAddressOf, real, text, usbAddressOf } from "./sysfs.js";

/** udev's E: properties for a device number. */
function udevProperties(root: string, dev: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of (text(join(root, "run/udev/data", `b${dev}`)) ?? "").split("\n")) {
    const m = /^E:([^=]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1]!, m[2]!.trim());
  }
  return out;
}

/** udev's \xNN escapes (ID_MODEL_ENC) back to text. */
export function udevDecode(s: string): string {
  return s.replace(/\\x([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** The name of the link in a /dev/disk/by-* directory that points at /dev/<name>, or "". */
function diskLink(root: string, dir: string, name: string): string {
  const links = join(root, "dev/disk", dir);
  const want = join(root, "dev", name);
  let found = "";
  for (const link of list(links)) if (linkTarget(join(links, link)) === want) found = link;
  return found;
}

function partitions(base: string, disk: string, entries: string[]): ResourcesStorageDiskPartition[] {
  const out: ResourcesStorageDiskPartition[] = [];
  const diskReal = real(join(base, disk));
  for (const name of entries) {
    if (name === disk || !name.startsWith(disk)) continue;
    const dir = join(base, name);
    const number = int(join(dir, "partition"));
    if (number === undefined) continue;
    // sda1 belongs to sda, but sdaa1 does not: a partition's directory sits in its disk's.
    const r = real(dir);
    if (diskReal && r && dirname(r) !== diskReal) continue;
    out.push({
      id: name,
      device: text(join(dir, "dev")) ?? "",
      read_only: int(join(dir, "ro")) === 1,
      size: (int(join(dir, "size")) ?? 0) * 512,
      partition: number,
    });
  }
  return out;
}

function disk(root: string, base: string, name: string, entries: string[]): ResourcesStorageDisk | undefined {
  const dir = join(base, name);
  const devicePath = join(dir, "device");
  const dev = text(join(dir, "dev"));
  // Multipath members have no device node of their own; only the main node counts.
  if (dev === undefined) return undefined;
  const d: ResourcesStorageDisk = {
    id: name,
    device: dev,
    model: text(join(devicePath, "model")) ?? "",
    type: exists(join(devicePath, "subsystem")) ? (linkName(join(devicePath, "subsystem")) ?? "") : "",
    read_only: int(join(dir, "ro")) === 1,
    size: (int(join(dir, "size")) ?? 0) * 512,
    removable: int(join(dir, "removable")) === 1,
    wwn: text(join(dir, "wwid")) ?? "",
    numa_node: deviceNumaNode(devicePath),
    device_path: diskLink(root, "by-path", name),
    block_size: int(join(dir, "queue/physical_block_size")) ?? 0,
    firmware_version: text(join(devicePath, "firmware_rev")) ?? "",
    rpm: 0,
    serial: "",
    device_id: diskLink(root, "by-id", name),
    partitions: partitions(base, name, entries),
    pci_address: pciAddressOf(devicePath) ?? "",
    usb_address: usbAddressOf(devicePath, root) ?? "",
  };
  // rbd images are network block devices, not local disks.
  if (d.type === "rbd") return undefined;
  if (name.startsWith("sr") && d.removable) {
    d.type = "cdrom";
    // Most drives report this size whatever the media.
    if (d.size === 0x1fffff * 512) d.size = 0;
  }

  const udev = udevProperties(root, dev);
  if (udev.get("ID_CDROM") === "1") d.type = "cdrom";
  else if (udev.get("ID_USB_DRIVER") === "usb-storage") d.type = "usb";
  else if (udev.get("ID_ATA_SATA") === "1") d.type = "sata";
  if (!d.firmware_version && udev.get("ID_REVISION")) d.firmware_version = udev.get("ID_REVISION")!;
  const model = udev.get("ID_MODEL_ENC") ? udevDecode(udev.get("ID_MODEL_ENC")!).trim() : udev.get("ID_MODEL");
  if (model) d.model = model;
  // The serial: udev's, else the one the kernel shows (virtio-blk on the disk, NVMe on its controller).
  d.serial = udev.get("ID_SERIAL_SHORT") || text(join(dir, "serial")) || text(join(devicePath, "serial")) || "";
  const rpm = udev.get("ID_ATA_ROTATION_RATE_RPM");
  if (rpm && /^\d+$/.test(rpm)) d.rpm = Number(rpm);
  // Without a known speed, a rotational disk shows 1 RPM (as LXD does), an SSD 0.
  else d.rpm = int(join(dir, "queue/rotational")) === 1 ? 1 : 0;

  return omitEmpty(d, ["model", "type", "wwn", "device_path", "firmware_version", "serial", "pci_address", "usb_address"]);
}

export function storageResources(root = "/"): ResourcesStorage {
  const base = join(root, "sys/class/block");
  const entries = naturalSort(list(base));
  const disks: ResourcesStorageDisk[] = [];
  for (const name of entries) {
    if (!exists(join(base, name, "device"))) continue;
    const d = disk(root, base, name, entries);
    if (d) disks.push(d);
  }
  return { disks, total: disks.reduce((n, d) => n + 1 + d.partitions.length, 0) };
}

