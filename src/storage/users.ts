/**
 * Who uses a pool or a volume: instances (their root disk, or a custom volume attached as a
 * disk, also through a profile), profiles whose disks name it, the pool's custom volumes, and
 * images cached on it. A pool or a volume in use cannot be deleted.
 */
import { expandDevices } from "../instances/expand.js";
import { instanceUrl, type InstanceRecord } from "../instances/record.js";
import { profileUrl, type ProfileLayer, type ProfileRecord } from "../profiles/record.js";
import type { StorageService } from "./service.js";

/** Reads of the instance side the storage services need. */
export interface StorageUserSource {
  records(project?: string): Promise<InstanceRecord[]>;
  layers(r: InstanceRecord): Promise<ProfileLayer[]>;
  profiles(project: string): Promise<ProfileRecord[]>;
}

type Devices = Record<string, Record<string, string>>;

const disksOn = (devices: Devices, pool: string, volume?: string) =>
  Object.values(devices).some((d) => d.type === "disk" && d.pool === pool && (volume === undefined ? true : d.path !== "/" && d.source === volume));

export const volumeUrl = (pool: string, type: string, name: string, project = "default") =>
  `/1.0/storage-pools/${encodeURIComponent(pool)}/volumes/${type}/${encodeURIComponent(name)}${project === "default" ? "" : `?project=${encodeURIComponent(project)}`}`;

export async function poolUsers(src: StorageUserSource, storage: StorageService, pool: string): Promise<string[]> {
  const out = new Set<string>();
  for (const r of await src.records()) {
    if (r.phase === "deleting") continue;
    if (r.pool === pool || disksOn(expandDevices(r, await src.layers(r)), pool)) out.add(instanceUrl(r.project, r.name));
  }
  for (const p of await src.profiles("default")) if (disksOn(p.devices, pool)) out.add(profileUrl(p.project, p.name));
  for (const v of await storage.volumes(pool)) {
    if (v.type === "custom") out.add(volumeUrl(pool, "custom", v.name, v.project));
    if (v.type === "image") out.add(`/1.0/images/${v.name}`);
  }
  return [...out].sort();
}

/** Instances and profiles that attach the custom volume `volume` of `pool`. */
export async function volumeUsers(src: StorageUserSource, project: string, pool: string, volume: string): Promise<string[]> {
  const out = new Set<string>();
  for (const r of await src.records(project)) {
    if (r.phase === "deleting") continue;
    if (disksOn(expandDevices(r, await src.layers(r)), pool, volume)) out.add(instanceUrl(r.project, r.name));
  }
  for (const p of await src.profiles(project)) if (disksOn(p.devices, pool, volume)) out.add(profileUrl(p.project, p.name));
  return [...out].sort();
}
