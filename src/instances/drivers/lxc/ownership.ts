/**
 * How an unprivileged container's rootfs gets the right ownership: an idmapped mount
 * (liblxc's `lxc.rootfs.options = idmap=container`, nothing on disk changes) when the kernel
 * and the filesystem support it, else a one-time shift of every owner on disk (sys/shift.ts),
 * recorded by the service as volatile.last_state.idmap.
 */
import { statfs } from "node:fs/promises";
import os from "node:os";
import { sameIdmap, type IdmapEntry } from "../../../sys/idmap.js";
import { shiftOwnership } from "../../../sys/shift.js";
import type { ContainerSpec } from "../../driver.js";
import type { RootfsOwnership } from "./config.js";

/**
 * statfs f_type → the kernel release whose idmapped mounts support that filesystem. Not
 * overlayfs: its layers can be idmapped, but an overlay mount itself cannot (EINVAL).
 */
const IDMAP_SINCE: Record<number, [number, number]> = {
  0xef53: [5, 12], // ext2/3/4
  0x58465342: [5, 12], // xfs
  0xf2f52010: [5, 12], // f2fs
  0x4d44: [5, 12], // vfat
  0x9123683e: [5, 15], // btrfs
  0x01021994: [6, 3], // tmpfs
  0x2fc12fc1: [6, 2], // zfs (2.2+ module), listed for completeness
};

/** Whether idmapped mounts work for a filesystem of this type on this kernel release. */
export function idmappedMountsSupported(fsType: number, kernelRelease: string): boolean {
  const since = IDMAP_SINCE[fsType];
  if (!since) return false;
  const [major = 0, minor = 0] = kernelRelease.split(/[.-]/).map((x) => parseInt(x, 10));
  return major > since[0] || (major === since[0] && minor >= since[1]);
}

/** A layered rootfs (storage/drivers/dir-layers.ts) is an overlayfs mount. */
const OVERLAYFS_MAGIC = 0x794c7630;

export type OwnershipPolicy = "auto" | "idmapped" | "shift";

/** Picks the ownership mode for a start. */
export async function chooseOwnership(spec: ContainerSpec, policy: OwnershipPolicy): Promise<RootfsOwnership> {
  if (spec.privileged) return "privileged";
  if (policy === "shift") return "shifted";
  if (policy === "idmapped") return "idmapped";
  const fs = await statfs(spec.rootfs);
  if (Number(fs.type) === OVERLAYFS_MAGIC && idmappedMountsSupported(0xef53, os.release())) return "layered";
  return idmappedMountsSupported(Number(fs.type), os.release()) ? "idmapped" : "shifted";
}

/**
 * Brings the rootfs on disk to what the mode needs and returns its new on-disk map (null:
 * as the image has it). Shifting happens only when the map changed, so it is paid once.
 */
export async function prepareRootfs(spec: ContainerSpec, mode: RootfsOwnership): Promise<IdmapEntry[] | null> {
  const current = spec.rootfsIdmap ?? null;
  if (mode === "shifted" || mode === "layered") {
    const target = spec.idmap ?? [];
    if (current && sameIdmap(current, target)) return current;
    await shiftOwnership(spec.rootfs, current ?? undefined, target);
    return target;
  }
  // idmapped or privileged: the rootfs must hold the image's own ids.
  if (current) await shiftOwnership(spec.rootfs, current, undefined);
  return null;
}
