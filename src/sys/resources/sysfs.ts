/**
 * Reading sysfs for the resources API: every helper answers undefined (or an empty list) for
 * a missing or unreadable file, so a host without some part of /sys yields empty values and
 * never an error. All paths given here are already under the tree's root.
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { release } from "node:os";
import { basename, dirname, join, resolve } from "node:path";

/**
 * A file's text, trimmed. readFileSync reads sysfs attributes in one read (their size shows as
 * a page) and /proc files until EOF; measured here it is 2-4x quicker per attribute than
 * small-file.ts's reader, which matters at the few hundred attributes one request reads.
 */
export function text(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** A decimal integer file (negative values allowed). */
export function int(path: string): number | undefined {
  const t = text(path);
  if (t === undefined || !/^-?\d+$/.test(t)) return undefined;
  return Number(t);
}

/** A hexadecimal id file ("0x8086\n" → "8086"). */
export function hexId(path: string): string | undefined {
  const t = text(path);
  return t === undefined ? undefined : t.replace(/^0x/, "");
}

export function exists(path: string): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return false;
  }
}

/** A directory (following symlinks). */
export function isDir(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
  } catch {
    return false;
  }
}

/** Names in a directory, sorted; [] when it cannot be listed. */
export function list(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch {
    return [];
  }
}

/** Names sorted the way people count: cpu2 before cpu10. */
export function naturalSort(names: string[]): string[] {
  return [...names].sort(collator.compare);
}
const collator = new Intl.Collator("en", { numeric: true });

export function real(path: string): string | undefined {
  try {
    return realpathSync.native(path);
  } catch {
    return undefined;
  }
}

/** Where a symlink points, resolved against its directory (the target need not exist). */
export function linkTarget(path: string): string | undefined {
  try {
    return resolve(dirname(path), readlinkSync(path));
  } catch {
    return undefined;
  }
}

/**
 * The last path element of where a symlink leads: a driver's or subsystem's name. One
 * readlink, where a realpath would readlink every element of a deep sysfs path.
 */
export function linkName(path: string): string | undefined {
  try {
    return basename(readlinkSync(path)) || undefined;
  } catch {
    return undefined;
  }
}

/** The NUMA node a device or CPU directory links to (nodeN holding numastat), else 0. */
export function numaNodeOf(dir: string): number {
  for (const name of list(dir)) {
    const m = /^node(\d+)$/.exec(name);
    if (m && exists(join(dir, name, "numastat"))) return Number(m[1]);
  }
  return 0;
}

/** A device's numa_node file, where -1 (no affinity) counts as node 0. */
export function deviceNumaNode(dir: string): number {
  const n = int(join(dir, "numa_node"));
  return n !== undefined && n > 0 ? n : 0;
}

/** The bound driver's name and version (module version, else the running kernel's release). */
export function driverOf(dir: string): { driver: string; version: string } | undefined {
  const driverPath = join(dir, "driver");
  if (!exists(driverPath)) return undefined;
  const driver = linkName(driverPath);
  if (!driver) return undefined;
  return { driver, version: text(join(driverPath, "module", "version")) ?? release() };
}

/**
 * The directory holding a device's own attributes: follows `device` links down while they are
 * directories (a wwan port sits below its modem), stopping where `device` is a plain file.
 */
export function deviceDir(path: string): string {
  let dir = path;
  for (let i = 0; i < 8; i++) {
    const next = join(dir, "device");
    if (!isDir(next)) break;
    dir = next;
  }
  return dir;
}

/** The PCI address of a device (of its virtio parent for a virtio device), or undefined. */
export function pciAddressOf(devicePath: string): string | undefined {
  const dir = deviceDir(devicePath);
  if (!exists(join(dir, "subsystem"))) return undefined;
  let target = real(dir);
  if (!target) return undefined;
  let subsystem = linkName(join(target, "subsystem"));
  if (subsystem === "virtio") {
    target = dirname(target);
    subsystem = linkName(join(target, "subsystem"));
  }
  return subsystem === "pci" ? basename(target) : undefined;
}

/** The USB "bus:device" address of a device below a USB controller, or undefined. */
export function usbAddressOf(devicePath: string, root: string): string | undefined {
  let path = real(devicePath);
  if (!path || !path.includes("/usb")) return undefined;
  const top = resolve(root);
  while (path && path !== "/" && path !== top) {
    const bus = int(join(path, "busnum"));
    const dev = int(join(path, "devnum"));
    if (bus !== undefined && dev !== undefined) return `${bus}:${dev}`;
    path = dirname(path);
  }
  return undefined;
}

/** Ids in a cpuset list ("0-3,8,10-11"); [] for anything malformed. */
export function parseCpuset(s: string | undefined): number[] {
  const out: number[] = [];
  if (!s) return out;
  for (const chunk of s.split(",")) {
    const m = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(chunk);
    if (!m) return [];
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    for (let i = lo; i <= hi; i++) out.push(i);
  }
  return out;
}

/**
 * Drops the listed keys whose value is empty the way Go's `omitempty` sees it ("", 0, false,
 * undefined, an empty array or map), so the JSON leaves them out as LXD does.
 */
export function omitEmpty<T extends object>(obj: T, keys: readonly (keyof T)[]): T {
  for (const k of keys) {
    const v = obj[k] as unknown;
    const empty =
      v === undefined ||
      v === null ||
      v === "" ||
      v === 0 ||
      v === false ||
      (Array.isArray(v) && v.length === 0) ||
      (typeof v === "object" && !Array.isArray(v) && Object.keys(v as object).length === 0);
    if (empty) delete obj[k];
  }
  return obj;
}

/** The same object with its keys in `order` (the order LXD's structs serialise in). */
export function inOrder<T extends object>(obj: T, order: readonly (keyof T)[]): T {
  const out = {} as T;
  for (const k of order) if (obj[k] !== undefined) out[k] = obj[k];
  return out;
}
