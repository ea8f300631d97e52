import type { InstanceSnapshot } from "../../api/instance.js";
import { badRequest } from "../../api/errors.js";
import type { ProfileLayer } from "../../profiles/record.js";
import type { DocumentStore, Txn } from "../../state/store.js";
import { expandConfig, expandDevices } from "../expand.js";
import type { InstanceFields, InstanceRecord } from "../record.js";

/**
 * What the store keeps for a snapshot at instance-snapshots/<project>/<instance>/<snapshot>:
 * the instance's writable state when it was taken (config with volatile keys, devices,
 * profiles, …), so a restore brings them back, as LXD keeps them. `phase` makes a snapshot
 * crash-safe as an instance's is: "creating" until its volume snapshot is whole, "deleting"
 * before anything of it is removed; the daemon's start removes what such a record names.
 */
export interface SnapshotRecord extends InstanceFields {
  name: string;
  instance: string;
  project: string;
  stateful: false;
  created_at: string;
  last_used_at: string;
  /** Go's zero time when it never expires (LXD's wire form). */
  expires_at: string;
  phase: "creating" | "ready" | "deleting";
  /** A rename under way: the volume snapshot may still have this name (recover() finishes it). */
  renamed_from?: string;
}

/** Go's zero time: "no expiry" on the wire. */
export const NO_EXPIRY = "0001-01-01T00:00:00Z";

export const snapshotPrefix = (project: string, instance: string) => `instance-snapshots/${project}/${instance}/`;
export const snapshotKey = (project: string, instance: string, snap: string) => snapshotPrefix(project, instance) + snap;
export const ALL_SNAPSHOTS = "instance-snapshots/";

export function snapshotUrl(project: string, instance: string, snap: string): string {
  return `/1.0/instances/${instance}/snapshots/${encodeURIComponent(snap)}${project === "default" ? "" : `?project=${encodeURIComponent(project)}`}`;
}

/** A snapshot name as LXD accepts it: not empty, no "/", not "." or "..", printable. */
export function validateSnapshotName(v: unknown): string {
  if (typeof v !== "string" || v === "") throw badRequest("A snapshot name is required");
  if (v.includes("/")) throw badRequest(`Invalid snapshot name "${v}": it cannot contain "/"`);
  if (v === "." || v === "..") throw badRequest(`Invalid snapshot name "${v}"`);
  if (v.length > 200 || /[\x00-\x1f\x7f]/.test(v) || /^\s|\s$/.test(v)) throw badRequest(`Invalid snapshot name "${JSON.stringify(v)}"`);
  return v;
}

/** An expiry time from the wire: "" or Go's zero time means none. */
export function parseExpiresAt(v: unknown): string {
  if (v === undefined || v === null || v === "") return NO_EXPIRY;
  if (typeof v !== "string" || Number.isNaN(Date.parse(v))) throw badRequest(`Invalid expires_at "${String(v)}": use an RFC 3339 time`);
  if (v.startsWith("0001-01-01")) return NO_EXPIRY;
  return new Date(v).toISOString();
}

export function expired(s: SnapshotRecord, now: Date): boolean {
  return s.expires_at !== NO_EXPIRY && Date.parse(s.expires_at) <= now.getTime();
}

/** The record of a snapshot of `r` taken now. */
export function snapshotOf(r: InstanceRecord, name: string, expiresAt: string): SnapshotRecord {
  return snapshotRecord(r, name, r, { created_at: new Date().toISOString(), last_used_at: r.last_used_at, expires_at: expiresAt }, "creating");
}

/** The record of snapshot `name` of `instance`, with a copy of `state` (an instance's, or a backup's). */
export function snapshotRecord(
  instance: { project: string; name: string },
  name: string,
  state: InstanceFields,
  times: Pick<SnapshotRecord, "created_at" | "last_used_at" | "expires_at">,
  phase: SnapshotRecord["phase"],
): SnapshotRecord {
  return {
    name,
    instance: instance.name,
    project: instance.project,
    architecture: state.architecture,
    description: state.description,
    config: { ...state.config },
    devices: structuredClone(state.devices),
    profiles: [...state.profiles],
    ephemeral: state.ephemeral,
    stateful: false,
    ...times,
    phase,
  };
}

/** The wire form (InstanceSnapshot), with the instance's profiles as they are now. */
export function snapshotToApi(s: SnapshotRecord, layers: readonly ProfileLayer[]): InstanceSnapshot {
  return {
    name: s.name,
    architecture: s.architecture,
    config: s.config,
    devices: s.devices,
    ephemeral: s.ephemeral,
    profiles: s.profiles,
    stateful: false,
    created_at: s.created_at,
    last_used_at: s.last_used_at,
    expires_at: s.expires_at,
    expanded_config: expandConfig(s, layers),
    expanded_devices: expandDevices(s, layers),
    size: -1,
  };
}

/** Ready snapshots of an instance, oldest first. */
export async function readySnapshots(store: Pick<DocumentStore, "list">, project: string, instance: string): Promise<SnapshotRecord[]> {
  const docs = await store.list<SnapshotRecord>(snapshotPrefix(project, instance));
  return docs.map((d) => d.value).filter((s) => s.phase === "ready").sort(byCreation);
}

export function byCreation(a: SnapshotRecord, b: SnapshotRecord): number {
  return a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.name.localeCompare(b.name);
}

/** In a transaction: moves every snapshot record of an instance to its new name. */
export async function renameSnapshotRecords(tx: Txn, project: string, from: string, to: string): Promise<void> {
  for (const d of await tx.list<SnapshotRecord>(snapshotPrefix(project, from))) {
    tx.delete(d.key);
    tx.put(snapshotKey(project, to, d.value.name), { ...d.value, instance: to });
  }
}
