/**
 * A create request checked before anything changes: name, type, config and devices, the
 * profiles, the image (its type must be the instance's), the root disk and its pool. Bad input
 * is refused here (400/404), before an operation starts.
 */
import type { InstancesPost } from "../api/instance.js";
import { badRequest, conflict, notFound } from "../api/errors.js";
import type { ImageStore } from "../images/store.js";
import type { ProfileStore } from "../profiles/store.js";
import type { DocumentStore } from "../state/store.js";
import type { StorageService } from "../storage/service.js";
import { validateDevices } from "./config/devices.js";
import { validateInstanceConfig } from "./config/keys.js";
import { validateInstanceName } from "./config/name.js";
import { imageConfig, profileList } from "./config/record-fields.js";
import { checkDeviceSources } from "./devices/sources.js";
import { checkVolumeDisks, type ManagedVolumes } from "./devices/volumes.js";
import type { InstanceEngines } from "./drivers/engines.js";
import { checkDevicesApplied, expandDevices, rootDisk } from "./expand.js";
import { checkExpansion, noRootDevice } from "./expansion.js";
import { remoteImageRef } from "./image-source.js";
import { checkNicParents, type ManagedNetworks } from "./nic-parents.js";
import { instanceKey, NEVER, type InstanceRecord } from "./record.js";
import type { RootDisks } from "./root-disk.js";
import type { PreparedCreate } from "./service.js";

export interface CreateRequestDeps {
  store: DocumentStore;
  storage: StorageService;
  images: ImageStore;
  profiles: ProfileStore;
  networks?: ManagedNetworks;
  volumes?: ManagedVolumes;
  driver: InstanceEngines;
  roots: RootDisks;
}

/**
 * Checks a create request and resolves its image without changing anything, so bad input
 * is refused on the request itself (400/404) before any operation starts.
 */
export async function prepareCreate(d: CreateRequestDeps, project: string, req: InstancesPost): Promise<PreparedCreate> {
  const name = validateInstanceName(req.name);
  const type = req.type || "container";
  if (type !== "container" && type !== "virtual-machine") throw badRequest(`Unknown instance type "${type}": use "container" or "virtual-machine"`);
  if (!d.driver.supports(type)) throw badRequest("Virtual machines are not available on this host: QEMU (qemu-system-x86_64) is not installed");
  const config = { ...instanceTypeLimits(req.instance_type), ...validateInstanceConfig(req.config ?? {}) };
  for (const k of Object.keys(config)) if (k.startsWith("volatile.")) throw badRequest(`"${k}" is set by lodged, not by requests`);
  const devices = validateDevices(req.devices);
  checkDevicesApplied(devices);
  await checkNicParents(devices, {}, { networks: d.networks, project, instance: name });
  await checkVolumeDisks(devices, {}, d.volumes, project);
  await checkDeviceSources(devices);
  const profiles = profileList(req.profiles);
  const layers = await d.profiles.resolve(project, profiles);
  const remote = remoteImageRef(req.source ?? { type: "none" });
  const image = remote ? undefined : await resolveImage(d.images, project, req);
  if (image && (image.type || "container") !== type) throw badRequest(`Requested image's type "${image.type || "container"}" doesn't match instance type "${type}"`);
  const root = rootDisk(expandDevices({ devices }, layers));
  if (!root) throw noRootDevice(name);
  const pool = root.pool;
  await d.storage.pool(pool);
  const record: InstanceRecord = {
    name,
    project,
    type,
    architecture: image?.architecture ?? "x86_64",
    description: req.description ?? "",
    config: { ...imageConfig(image), ...config },
    devices,
    profiles,
    ephemeral: !!req.ephemeral,
    stateful: false,
    created_at: "",
    last_used_at: NEVER,
    pool,
    phase: "creating",
  };
  checkExpansion({ before: record, beforeLayers: layers, after: record, afterLayers: layers, running: false });
  await d.roots.check(expandDevices(record, layers), record.type);
  if (await d.store.get(instanceKey(project, name))) throw conflict(`Instance "${name}" already exists`);
  return { record, image: image?.fingerprint, remote };
}

async function resolveImage(images: ImageStore, project: string, req: InstancesPost) {
  const src = req.source ?? { type: "none" };
  if (src.type === "none") return undefined;
  if (src.type !== "image") throw badRequest(`Instance source type "${src.type}" is not supported yet`);
  let ref = src.fingerprint;
  if (!ref && src.alias) {
    try {
      ref = (await images.aliases.get(project, src.alias)).target;
    } catch {
      throw notFound(`Image "${src.alias}" not found`);
    }
  }
  if (!ref) throw badRequest("The image source needs an alias or a fingerprint");
  return images.record(project, ref);
}

/**
 * `instance_type` as LXD takes it without a cloud catalogue: "cN-mM" is N CPUs and M GiB of
 * memory (fractions allowed: "c0.5-m0.5"), as limits.cpu / limits.memory; keys set in the
 * request's config win over it. Named cloud types need a catalogue Lodge does not download.
 */
export function instanceTypeLimits(type: string | undefined): Record<string, string> {
  if (!type) return {};
  const m = /^c(\d+(?:\.\d+)?)-m(\d+(?:\.\d+)?)$/.exec(type);
  if (!m) throw badRequest(`Unknown instance_type "${type}": use "cN-mM" (N CPUs, M GiB of memory), e.g. "c2-m4"`);
  const cpus = Math.max(1, Math.ceil(Number(m[1])));
  return { "limits.cpu": String(cpus), "limits.memory": `${Math.round(Number(m[2]) * 1024)}MiB` };
}
