/**
 * The root disk's `size`: what it means depends on the volume. A container's is a quota on
 * its volume (only pools whose driver has quotas can hold one); a VM's is the size of its
 * disk image, which every pool can grow.
 */
import { badRequest } from "../api/errors.js";
import { parseSize } from "../config/keys.js";
import type { ProfileLayer } from "../profiles/record.js";
import type { StorageService } from "../storage/service.js";
import type { InstanceType } from "./driver.js";
import type { InstanceRecord } from "./record.js";
import { expandDevices, rootDisk } from "./expand.js";

type Devices = Record<string, Record<string, string>>;

/** The root disk's `size` in bytes, or undefined when it has none. */
export function rootDiskSize(devices: Devices): number | undefined {
  const root = rootDisk(devices);
  const size = root ? devices[root.name]!.size : undefined;
  return size ? parseSize(size) : undefined;
}

export class RootDisks {
  constructor(private readonly storage: StorageService) {}

  /** Refuses a container root disk size the pool cannot enforce, rather than ignoring it. */
  async check(devices: Devices, type: InstanceType): Promise<void> {
    const root = rootDisk(devices);
    if (!root || !devices[root.name]!.size || type === "virtual-machine") return;
    if (!(await this.storage.capabilities(root.pool)).quotas)
      throw badRequest(`Device "${root.name}": "size" needs a storage pool with quotas; pool "${root.pool}" has none`);
  }

  /** Puts the root disk's `size` on the instance's new volume (create, copy, move, import). */
  async apply(r: InstanceRecord, layers: readonly ProfileLayer[]): Promise<void> {
    const size = rootDiskSize(expandDevices(r, layers));
    if (size !== undefined) await this.storage.setVolumeQuota(await this.storage.instanceVolume(r.pool, r.project, r.name, r.type), size);
  }

  /**
   * Sets the volume's size to the root disk size of `after` when it differs from `before`'s
   * (a running container is held to it at once). Returns the undo, or undefined when nothing changed.
   */
  async change(r: InstanceRecord, before: Devices, after: Devices): Promise<(() => Promise<void>) | undefined> {
    const [from, to] = [rootDiskSize(before), rootDiskSize(after)];
    if (from === to) return undefined;
    const ref = await this.storage.instanceVolume(r.pool, r.project, r.name, r.type);
    await this.storage.setVolumeQuota(ref, to);
    return () => this.storage.setVolumeQuota(ref, from);
  }
}
