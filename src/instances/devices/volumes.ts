/**
 * Disks that attach a custom storage volume (`pool=POOL source=VOLUME`, path other than /):
 * the volume must exist on the request that adds the disk, and at start its host path is
 * looked up for the mount. The storage side answers both (CustomVolumes).
 */
import { badRequest } from "../../api/errors.js";

type Devices = Record<string, Record<string, string>>;

export interface ManagedVolumes {
  /** Host path of a custom volume, or undefined when there is none of that name. */
  volumePath(project: string, pool: string, name: string): Promise<string | undefined>;
}

export const isVolumeDisk = (d: Record<string, string>) => d.type === "disk" && d.path !== "/" && !!d.pool;

/** Refuses (400) new or changed volume disks whose volume does not exist. */
export async function checkVolumeDisks(devices: Devices, before: Devices, volumes: ManagedVolumes | undefined, project: string): Promise<void> {
  for (const [name, d] of Object.entries(devices)) {
    if (!isVolumeDisk(d)) continue;
    const old = before[name];
    if (old && old.pool === d.pool && old.source === d.source) continue;
    const path = volumes ? await volumes.volumePath(project, d.pool!, d.source!) : undefined;
    if (!path) throw badRequest(`Invalid device "${name}": storage volume "${d.source}" not found in pool "${d.pool}"`);
  }
}

/** Host paths of the volume disks of `devices`, by "pool/volume". */
export async function lookupVolumePaths(devices: Devices, volumes: ManagedVolumes | undefined, project: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const d of Object.values(devices)) {
    if (!isVolumeDisk(d) || !volumes) continue;
    const path = await volumes.volumePath(project, d.pool!, d.source!);
    if (path) out.set(`${d.pool}/${d.source}`, path);
  }
  return out;
}
