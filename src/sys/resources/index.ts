/**
 * The host's resources as GET /1.0/resources serves them (LXD's shape), read from /proc and
 * /sys under `root` ("/" on a host; a fake tree in tests). Nothing is spawned, and a file that
 * is missing or unreadable gives an empty value, never an error.
 */
import type { Resources } from "../../api/resources.js";
import { cpuResources } from "./cpu.js";
import { gpuResources } from "./gpu.js";
import { memoryResources } from "./memory.js";
import { networkResources } from "./network.js";
import { pciResources } from "./pci.js";
import { storageResources } from "./storage.js";
import { systemResources } from "./system.js";
import { usbResources } from "./usb.js";

export { cpuResources, gpuResources, memoryResources, networkResources, pciResources, storageResources, systemResources, usbResources };

export function hostResources(root = "/"): Resources {
  return {
    cpu: cpuResources(root),
    memory: memoryResources(root),
    gpu: gpuResources(root),
    network: networkResources(root),
    storage: storageResources(root),
    usb: usbResources(root),
    pci: pciResources(root),
    system: systemResources(root),
  };
}
