import type { Instance, InstancePut, InstanceType } from "../api/instance.js";
import type { ProfileLayer } from "../profiles/record.js";
import { expandConfig, expandDevices } from "./expand.js";

/**
 * What the store keeps for an instance at instances/<project>/<name>. `phase` makes creation
 * crash-safe: a record stays "creating" until every step of a create has succeeded, and a
 * daemon that finds one at start-up (it was killed mid-create) undoes the whole create. A
 * delete marks it "deleting" before it removes anything, and is finished the same way.
 */
export interface InstanceRecord extends InstancePut {
  name: string;
  project: string;
  type: InstanceType;
  created_at: string;
  last_used_at: string;
  /** Storage pool of the root disk, fixed at create. */
  pool: string;
  phase: "creating" | "ready" | "deleting";
  /**
   * A move between pools under way (move.ts): `to` while the copy is made (the daemon's start
   * removes it), `from` once the instance runs from the new pool (the start removes the old).
   */
  move?: { to?: string; from?: string };
  /** A restore from this snapshot under way (snapshots/service.ts): the daemon's start finishes it. */
  restoring?: string;
}

/**
 * The writable state an instance and each of its snapshots keep (and a backup carries): what a
 * snapshot takes and a restore brings back.
 */
export type InstanceFields = Omit<InstancePut, "stateful">;

export const instanceKey = (project: string, name: string) => `instances/${project}/${name}`;
export const instancePrefix = (project?: string) => (project ? `instances/${project}/` : "instances/");

/** Go's zero time, which LXD sends for "never". */
export const NEVER = "1970-01-01T00:00:00Z";

/** The driver-level name: unique across projects on this host (as LXD names them on disk). */
export function hostName(project: string, name: string): string {
  return project === "default" ? name : `${project}_${name}`;
}

export function instanceUrl(project: string, name: string): string {
  return `/1.0/instances/${name}${project === "default" ? "" : `?project=${encodeURIComponent(project)}`}`;
}

/** The API view of a record, given its current status and its profiles (resolved, in order). */
export function toApi(r: InstanceRecord, status: { status: string; status_code: number }, layers: readonly ProfileLayer[]): Instance {
  return {
    name: r.name,
    type: r.type,
    architecture: r.architecture,
    description: r.description,
    config: r.config,
    devices: r.devices,
    profiles: r.profiles,
    ephemeral: r.ephemeral,
    stateful: r.stateful,
    created_at: r.created_at,
    last_used_at: r.last_used_at,
    location: "none",
    project: r.project,
    status: status.status,
    status_code: status.status_code,
    expanded_config: expandConfig(r, layers),
    expanded_devices: expandDevices(r, layers),
  };
}
