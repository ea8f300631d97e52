import { ApiError, badRequest } from "../api/errors.js";
import type { ProfileLayer } from "../profiles/record.js";
import { validateDevices } from "./config/devices.js";
import { hostEndKind, withNicVolatile } from "./devices/nic.js";
import { expandConfig, expandDevices, rootDisk } from "./expand.js";
import type { InstanceRecord } from "./record.js";

/** Keys that decide the id map: fixed while the instance runs. */
const STOPPED_ONLY_KEYS = ["security.privileged", "security.idmap.isolated", "security.idmap.base", "security.idmap.size"];

export interface ExpansionChange {
  before: InstanceRecord;
  beforeLayers: readonly ProfileLayer[];
  after: InstanceRecord;
  afterLayers: readonly ProfileLayer[];
  /** The instance runs (or is frozen). */
  running: boolean;
}

/**
 * Checks what an instance becomes once expanded (its own edit, or a change to one of its
 * profiles): devices that clash across layers, the root disk, keys fixed while it runs. Returns
 * `after` with the volatile keys of its (expanded) NICs made or dropped. Throws a 400 that
 * names the instance and the fault.
 */
export function checkExpansion(c: ExpansionChange): InstanceRecord {
  const { before, after } = c;
  const was = expandConfig(before, c.beforeLayers);
  const will = expandConfig(after, c.afterLayers);
  if (c.running)
    for (const key of STOPPED_ONLY_KEYS)
      if ((was[key] ?? "") !== (will[key] ?? "")) throw badRequest(`"${key}" can only be changed while the instance is stopped`);
  const devices = expandDevices(after, c.afterLayers);
  try {
    validateDevices(devices);
  } catch (e) {
    if (e instanceof ApiError) throw badRequest(`Instance "${after.name}": ${e.message}`);
    throw e;
  }
  const root = rootDisk(devices);
  if (!root) throw noRootDevice(after.name);
  if (root.pool !== before.pool) throw badRequest("Moving an instance to another pool is not supported yet");
  return { ...after, config: withNicVolatile(after.config, devices, { running: c.running, kind: hostEndKind(after.type) }) };
}

export function noRootDevice(name: string): ApiError {
  return badRequest(`Instance "${name}" has no root device: add a disk device with path "/" and a pool, to the instance or one of its profiles`);
}
