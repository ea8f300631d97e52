import { badRequest } from "../api/errors.js";
import type { ProfilePut } from "../api/profile.js";
import { validateDevices } from "../instances/config/devices.js";
import { validateInstanceConfig } from "../instances/config/keys.js";
import { checkDevicesApplied } from "../instances/expand.js";
import { checkDeviceSources } from "../instances/devices/sources.js";
import { checkNicParents, type ManagedNetworks } from "../instances/nic-parents.js";
import { checkVolumeDisks, type ManagedVolumes } from "../instances/devices/volumes.js";

type Devices = Record<string, Record<string, string>>;

/** A profile's description, config and devices, checked as an instance's are (LXD's keys). */
export function validateProfileBody(body: ProfilePut): { description: string; config: Record<string, string>; devices: Devices } {
  if (body.description !== undefined && typeof body.description !== "string") throw badRequest("description must be a string");
  const raw = body.config ?? {};
  if (typeof raw !== "object" || Array.isArray(raw)) throw badRequest("config must be a map of keys to values");
  for (const k of Object.keys(raw)) if (k.startsWith("volatile.")) throw badRequest(`"${k}": volatile keys can only be set on instances, not in profiles`);
  const config = validateInstanceConfig(raw);
  const devices = validateDevices(body.devices);
  checkDevicesApplied(devices);
  return { description: body.description ?? "", config, devices };
}

/** Host-side checks of devices that are new or changed (bridges, sources). */
export async function checkProfileDevicesOnHost(devices: Devices, before: Devices = {}, net: { networks?: ManagedNetworks; volumes?: ManagedVolumes; project?: string } = {}): Promise<void> {
  await checkNicParents(devices, before, net);
  await checkVolumeDisks(devices, before, net.volumes, net.project ?? "default");
  await checkDeviceSources(devices, before);
}
