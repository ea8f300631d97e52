/**
 * What the QEMU driver needs from a VM's record and volume (VmSpec): the root disk the
 * storage layer made (a qcow2 over the image's disk, or a copy), the image's kernel and
 * initrd for a direct boot when it ships them (in boot/), CPUs and memory from limits.*,
 * secure boot, and the cloud-init keys.
 */
import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseBool, parseSize } from "../config/keys.js";
import type { VmSpec } from "./driver.js";
import type { RunConfig } from "./runconfig.js";

/** LXD's defaults for a VM without limits. */
export const VM_DEFAULT_CPUS = 1;
export const VM_DEFAULT_MEMORY = 1024 * 1024 * 1024;
/** A direct boot's command line when the image names none. */
export const DEFAULT_CMDLINE = "console=ttyS0 root=/dev/vda rw";

const exists = (p: string) => access(p).then(() => true, () => false);

/** limits.cpu as a count: "2", or a pinning set ("0-1,3") counted. */
export function cpuCount(value: string | undefined): number {
  if (!value) return VM_DEFAULT_CPUS;
  if (/^\d+$/.test(value)) return Math.max(1, Number(value));
  let n = 0;
  for (const part of value.split(",")) {
    const [a, b] = part.split("-").map(Number);
    n += b === undefined ? 1 : b! - a! + 1;
  }
  return Math.max(1, n);
}

/** limits.memory in bytes: a size, or a percentage of the host's memory. */
export function memoryBytes(value: string | undefined, hostMemory: number): number {
  if (!value) return VM_DEFAULT_MEMORY;
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(value);
  const bytes = pct ? Math.floor((hostMemory * Number(pct[1])) / 100) : parseSize(value);
  // QEMU takes whole MiB.
  return Math.max(64, Math.floor(bytes / (1024 * 1024))) * 1024 * 1024;
}

/**
 * The kernel command line an image asks for: its `lodge.cmdline` property (the instance's
 * image.lodge.cmdline key), else `boot/cmdline` beside its kernel, else the default.
 */
async function cmdline(volumePath: string, config: Record<string, string>): Promise<string> {
  if (config["image.lodge.cmdline"]) return config["image.lodge.cmdline"];
  const text = await readFile(join(volumePath, "boot", "cmdline"), "utf8").catch(() => undefined);
  return text?.trim() || DEFAULT_CMDLINE;
}

export async function buildVmSpec(o: {
  name: string;
  hostname: string;
  volumePath: string;
  config: Record<string, string>;
  run: RunConfig;
  hostMemory: number;
}): Promise<VmSpec> {
  const { volumePath, config } = o;
  const rootDisk = (await exists(join(volumePath, "root.img"))) ? join(volumePath, "root.img") : join(volumePath, "rootfs.img");
  const kernel = join(volumePath, "boot", "vmlinuz");
  const initrd = join(volumePath, "boot", "initrd.img");
  const boot = (await exists(kernel)) ? { kernel, initrd: (await exists(initrd)) ? initrd : undefined, cmdline: await cmdline(volumePath, config) } : undefined;
  return {
    name: o.name,
    rootfs: "",
    hostname: o.hostname,
    run: o.run,
    rootDisk,
    boot,
    cpus: cpuCount(config["limits.cpu"]),
    memoryBytes: memoryBytes(config["limits.memory"], o.hostMemory),
    secureboot: parseBool(config["security.secureboot"] ?? "true"),
    cloudInit: {
      userData: config["cloud-init.user-data"] ?? config["user.user-data"],
      vendorData: config["cloud-init.vendor-data"] ?? config["user.vendor-data"],
      networkConfig: config["cloud-init.network-config"] ?? config["user.network-config"],
    },
    stateDir: volumePath,
  };
}
