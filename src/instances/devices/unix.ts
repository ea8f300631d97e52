/**
 * unix-char and unix-block devices, with LXD's keys: a device node inside the instance at
 * `path` (default: the `source` path), numbered by `major`/`minor` or else as the host's
 * `source` is, owned `uid`:`gid` with `mode` as the instance sees them (default root, 0660).
 * Its access is allowed (rwm) in the instance's device cgroup. A source that is missing skips
 * the device when `required=false`, else it is an error naming the device.
 */
import { stat } from "node:fs/promises";
import { badRequest } from "../../api/errors.js";
import { parseBool } from "../../config/keys.js";
import type { DeviceNodeSpec, DeviceRule } from "../runconfig.js";

type Device = Record<string, string>;

/** What a host path is: a device (with its numbers), something else, or nothing (null). */
export interface HostDevice {
  type: "c" | "b" | "other";
  major: number;
  minor: number;
}
export type HostDevices = ReadonlyMap<string, HostDevice | null>;

export const isUnixDevice = (d: Device): boolean => d.type === "unix-char" || d.type === "unix-block";

/** The host path whose node a unix device copies. */
const hostPath = (d: Device): string => (d.source || d.path)!;

/** Whether the device takes a number from the host (major or minor unset). */
const needsHost = (d: Device): boolean => !d.major || !d.minor;

/** Looks up the host paths the unix devices of an instance take their numbers from. */
export async function lookupHostDevices(devices: Record<string, Device>): Promise<Map<string, HostDevice | null>> {
  const paths = new Set(Object.values(devices).filter((d) => isUnixDevice(d) && needsHost(d)).map(hostPath));
  const out = new Map<string, HostDevice | null>();
  await Promise.all(
    [...paths].map(async (p) => {
      const st = await stat(p, { bigint: true }).catch(() => undefined);
      out.set(p, st ? { type: st.isCharacterDevice() ? "c" : st.isBlockDevice() ? "b" : "other", major: devMajor(st.rdev), minor: devMinor(st.rdev) } : null);
    }),
  );
  return out;
}

/** glibc's gnu_dev_major/minor for the kernel's 64-bit dev_t encoding. */
export function devMajor(dev: bigint): number {
  return Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
}
export function devMinor(dev: bigint): number {
  return Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
}

/**
 * The node of a unix device; undefined when its host source is missing and it is not required
 * (or `lenient`: a run-config of what may already run, where a vanished source is no error).
 */
export function unixDeviceNode(name: string, d: Device, host: HostDevices, lenient = false): DeviceNodeSpec | undefined {
  const type = d.type === "unix-block" ? "b" : "c";
  let major = d.major ? Number(d.major) : undefined;
  let minor = d.minor ? Number(d.minor) : undefined;
  if (major === undefined || minor === undefined) {
    const src = hostPath(d);
    const found = host.get(src);
    if (!found) {
      if (lenient || (d.required !== undefined && !parseBool(d.required))) return undefined;
      throw badRequest(`Device "${name}": source "${src}" does not exist on the host (give major and minor, or required=false)`);
    }
    if (found.type !== type) {
      const want = type === "c" ? "character" : "block";
      const is = found.type === "other" ? "not a device" : `a ${found.type === "c" ? "character" : "block"} device`;
      throw badRequest(`Device "${name}": "${src}" is ${is}, not a ${want} device${found.type === "other" ? "" : ` (use ${found.type === "c" ? "unix-char" : "unix-block"})`}`);
    }
    major ??= found.major;
    minor ??= found.minor;
  }
  return {
    device: name,
    type,
    path: (d.path || d.source)!,
    major,
    minor,
    uid: d.uid ? Number(d.uid) : 0,
    gid: d.gid ? Number(d.gid) : 0,
    mode: d.mode ? parseInt(d.mode, 8) : 0o660,
  };
}

/** The device-cgroup rule that lets the instance use a node. */
export function nodeRule(n: DeviceNodeSpec): DeviceRule {
  return { allow: true, rule: `${n.type} ${n.major}:${n.minor} rwm` };
}
