/**
 * USB devices from /sys/bus/usb/devices (hubs left out), with their interfaces; vendor and
 * class names from usb.ids.
 */
import { join } from "node:path";
import type { ResourcesUSB, ResourcesUSBDevice, ResourcesUSBDeviceInterface } from "../../api/resources.js";
import { idNames, idsDatabase, USB_IDS } from "./ids.js";
import { driverOf, exists, hexId, int, isDir, list, text } from "./sysfs.js";

const hex = (path: string) => {
  const t = text(path);
  return t !== undefined && /^[0-9a-fA-F]+$/.test(t) ? parseInt(t, 16) : undefined;
};

export function usbResources(root = "/"): ResourcesUSB {
  const base = join(root, "sys/bus/usb/devices");
  const db = idsDatabase(root, USB_IDS);
  const devices: ResourcesUSBDevice[] = [];
  for (const name of list(base)) {
    const dir = join(base, name);
    // Interfaces ("1-1:1.0") have no bus number; devices do.
    if (!exists(join(dir, "busnum"))) continue;
    // Class 09 is a hub.
    if (hex(join(dir, "bDeviceClass")) === 9) continue;
    const vendorId = hexId(join(dir, "idVendor")) ?? "";
    const productId = hexId(join(dir, "idProduct")) ?? "";
    const names = idNames(db, vendorId, productId);
    const speed = Number(text(join(dir, "speed")));
    const interfaces: ResourcesUSBDeviceInterface[] = [];
    for (const sub of list(dir)) {
      const subDir = join(dir, sub);
      if (!sub.startsWith(name) || !isDir(subDir)) continue;
      const classId = hex(join(subDir, "bInterfaceClass")) ?? 0;
      const subclassId = hex(join(subDir, "bInterfaceSubClass")) ?? 0;
      const cls = db.classes.get(classId.toString(16).padStart(2, "0"));
      const drv = driverOf(subDir);
      interfaces.push({
        class: cls?.name ?? "",
        class_id: classId,
        driver: drv?.driver ?? "",
        driver_version: drv?.version ?? "",
        number: hex(join(subDir, "bInterfaceNumber")) ?? 0,
        subclass: subclassId > 0 ? (cls?.subclasses.get(subclassId.toString(16).padStart(2, "0")) ?? "") : "",
        subclass_id: subclassId,
      });
    }
    devices.push({
      bus_address: int(join(dir, "busnum")) ?? 0,
      device_address: int(join(dir, "devnum")) ?? 0,
      interfaces,
      vendor: names.vendor ?? "",
      vendor_id: vendorId,
      // The name the device gives itself, else usb.ids'.
      product: text(join(dir, "product")) || names.product || "",
      product_id: productId,
      speed: Number.isFinite(speed) ? speed : 0,
    });
  }
  return { devices, total: devices.length };
}
