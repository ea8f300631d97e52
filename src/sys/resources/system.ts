/**
 * The machine itself: DMI strings from /sys/class/dmi/id, and whether Lodge runs on a physical
 * host, in a virtual machine or in a container. LXD asks systemd-detect-virt for the latter;
 * Lodge reads the markers that tool reads, spawning nothing.
 */
import { join } from "node:path";
import type { ResourcesSystem } from "../../api/resources.js";
import { exists, int, text } from "./sysfs.js";

/** SMBIOS chassis types (DMTF DSP0134, 7.4.1). */
const CHASSIS_TYPES: Record<number, string> = {
  0x1: "Other",
  0x2: "Unknown",
  0x3: "Desktop",
  0x4: "Low Profile Desktop",
  0x5: "Pizza Box",
  0x6: "Mini Tower",
  0x7: "Tower",
  0x8: "Portable",
  0x9: "Laptop",
  0xa: "Notebook",
  0xb: "Hand Held",
  0xc: "Docking Station",
  0xd: "All in One",
  0xe: "Sub Notebook",
  0xf: "Space-saving",
  0x10: "Lunch Box",
  0x11: "Main Server Chassis",
  0x12: "Expansion Chassis",
  0x13: "SubChassis",
  0x14: "Bus Expansion Chassis",
  0x15: "Peripheral Chassis",
  0x16: "RAID Chassis",
  0x17: "Rack Mount Chassis",
  0x18: "Sealed-case PC",
  0x19: "Multi-system chassis",
  0x1a: "Compact PCI",
  0x1b: "Advanced TCA",
  0x1c: "Blade",
  0x1d: "Blade Enclosure",
  0x1e: "Tablet",
  0x1f: "Convertible",
  0x20: "Detachable",
  0x21: "IoT Gateway",
  0x22: "Embedded PC",
  0x23: "Mini PC",
  0x24: "Stick PC",
};

/** Vendors in DMI strings that mean a hypervisor (systemd's dmi_vendor_table). */
const VM_VENDORS = /^(KVM|OpenStack|KubeVirt|Amazon EC2|QEMU|VMware|VMW|innotek GmbH|VirtualBox|Oracle Corporation|Xen|Bochs|Parallels|BHYVE|Hyper-V|Apple Virtualization|Google Compute Engine|Firecracker)/;

/** "container", "virtual-machine" or "physical", from the host's own markers. */
export function systemType(root = "/"): string {
  if (exists(join(root, "run/systemd/container")) || exists(join(root, ".dockerenv")) || exists(join(root, "run/.containerenv"))) return "container";
  const env = text(join(root, "proc/1/environ"));
  if (env?.split("\0").some((e) => e.startsWith("container="))) return "container";
  const dmi = join(root, "sys/class/dmi/id");
  for (const f of ["sys_vendor", "product_name", "board_vendor", "bios_vendor"]) {
    if (VM_VENDORS.test(text(join(dmi, f)) ?? "")) return "virtual-machine";
  }
  if (text(join(root, "sys/hypervisor/type"))) return "virtual-machine";
  // The CPUID hypervisor bit, which every mainstream hypervisor sets for its guests.
  if (/^flags\s*:.*\bhypervisor\b/m.test(text(join(root, "proc/cpuinfo")) ?? "")) return "virtual-machine";
  return "physical";
}

const typeCache = new Map<string, string>();

export function systemResources(root = "/"): ResourcesSystem {
  let type = typeCache.get(root);
  if (type === undefined) typeCache.set(root, (type = systemType(root)));
  const dmi = join(root, "sys/class/dmi/id");
  const s = (f: string) => text(join(dmi, f)) ?? "";
  const system: ResourcesSystem = {
    uuid: "",
    vendor: "",
    product: "",
    family: "",
    version: "",
    sku: "",
    serial: "",
    type,
    firmware: null,
    chassis: null,
    motherboard: null,
  };
  // Without DMI (many ARM boards, some VMs) LXD answers the type alone; so does Lodge.
  if (!exists(dmi)) return system;
  return {
    ...system,
    uuid: s("product_uuid"),
    vendor: s("sys_vendor"),
    product: s("product_name"),
    family: s("product_family"),
    version: s("product_version"),
    sku: s("product_sku"),
    serial: s("product_serial"),
    firmware: { vendor: s("bios_vendor"), date: s("bios_date"), version: s("bios_version") },
    chassis: { vendor: s("chassis_vendor"), type: CHASSIS_TYPES[int(join(dmi, "chassis_type")) ?? 0] ?? "", serial: s("chassis_serial"), version: s("chassis_version") },
    motherboard: { vendor: s("board_vendor"), product: s("board_name"), serial: s("board_serial"), version: s("board_version") },
  };
}
