/**
 * PCI devices from /sys/bus/pci/devices: ids, names from pci.ids, driver, NUMA node, IOMMU
 * group and Vital Product Data.
 */
import { basename, join } from "node:path";
import { readFileSync } from "node:fs";
import type { ResourcesPCI, ResourcesPCIDevice, ResourcesPCIVPD } from "../../api/resources.js";
import { idNames, idsDatabase, PCI_IDS, type IdsDatabase } from "./ids.js";
import { deviceNumaNode, driverOf, exists, hexId, linkTarget, list, omitEmpty } from "./sysfs.js";

export const PCI_DEVICES = "sys/bus/pci/devices";

export function pciIds(root: string): IdsDatabase {
  return idsDatabase(root, PCI_IDS);
}

/** VPD keywords worth reporting: the V*, Y* and Z* vendor ranges and the standard ones. */
function vpdKnownKey(key: string): boolean {
  return /^[VYZ]/.test(key) || ["CC", "EC", "FC", "FN", "MN", "NA", "PN", "RM", "SN"].includes(key);
}

const vpdString = (buf: Buffer) => buf.toString("latin1").replace(/^[\0 ]+|[\0 ]+$/g, "");

/**
 * Parses PCI Vital Product Data: resources of a tag byte then a length (2 bytes little-endian
 * for large resources, the tag's low 3 bits for small ones). 0x82 is the product name, 0x90
 * and 0x91 hold read-only and read-write "KK" + length + value keywords; 0x78 ends it.
 */
export function parseVpd(buf: Buffer): ResourcesPCIVPD {
  const vpd: ResourcesPCIVPD = { product_name: "", entries: {} };
  let pos = 0;
  while (pos < buf.length) {
    const tag = buf[pos++]!;
    let len: number;
    if (tag & 0x80) {
      if (pos + 2 > buf.length) break;
      len = buf.readUInt16LE(pos);
      pos += 2;
    } else {
      if (tag === 0x78) break;
      len = tag & 0x07;
    }
    const body = buf.subarray(pos, Math.min(pos + len, buf.length));
    pos += len;
    if (tag === 0x82) vpd.product_name = vpdString(body);
    else if (tag === 0x90 || tag === 0x91) {
      let p = 0;
      while (p + 3 <= body.length) {
        const key = vpdString(body.subarray(p, p + 2));
        const n = body[p + 2]!;
        const value = vpdString(body.subarray(p + 3, p + 3 + n));
        p += 3 + n;
        if (n > 0 && key && vpdKnownKey(key)) vpd.entries![key] = value;
      }
    }
  }
  return omitEmpty(vpd, ["product_name", "entries"]);
}

/**
 * VPD is read-only data from the card's EEPROM, and reading it goes out to the device (slow on
 * some cards), so it is read once per device and kept.
 */
const vpdCache = new Map<string, ResourcesPCIVPD>();

function readVpd(dir: string): ResourcesPCIVPD {
  let vpd = vpdCache.get(dir);
  if (!vpd) {
    try {
      vpd = parseVpd(readFileSync(join(dir, "vpd")));
    } catch {
      vpd = {};
    }
    vpdCache.set(dir, vpd);
  }
  return structuredClone(vpd);
}

export function pciResources(root = "/"): ResourcesPCI {
  const base = join(root, PCI_DEVICES);
  const db = pciIds(root);
  const devices: ResourcesPCIDevice[] = [];
  for (const address of list(base)) {
    const dir = join(base, address);
    const drv = driverOf(dir);
    const vendorId = hexId(join(dir, "vendor")) ?? "";
    const productId = hexId(join(dir, "device")) ?? "";
    const names = idNames(db, vendorId, productId);
    const group = linkTarget(join(dir, "iommu_group"));
    devices.push({
      driver: drv?.driver ?? "",
      driver_version: drv?.version ?? "",
      numa_node: deviceNumaNode(dir),
      pci_address: address,
      vendor: names.vendor ?? "",
      vendor_id: vendorId,
      product: names.product ?? "",
      product_id: productId,
      iommu_group: group && /^\d+$/.test(basename(group)) ? Number(basename(group)) : 0,
      vpd: exists(join(dir, "vpd")) ? readVpd(dir) : {},
    });
  }
  return { devices, total: devices.length };
}
