/** backup.yaml for an instance and its snapshots, from Lodge's records. */
import { expandConfig, expandDevices } from "../instances/expand.js";
import { toApi, type InstanceFields, type InstanceRecord } from "../instances/record.js";
import type { SnapshotRecord } from "../instances/snapshots/record.js";
import type { ProfileLayer } from "../profiles/record.js";
import { GO_ZERO_TIME, type BackupConfig } from "./config.js";

/** A snapshot as a backup records it: what a snapshot record (the snapshots service's) holds of it. */
export type BackupSnapshotRecord = Pick<SnapshotRecord, "name" | keyof InstanceFields | "created_at" | "last_used_at" | "expires_at">;

/** backup.yaml for an instance, in LXD's shape (lxd/backup/backup_config.go). */
export function backupConfig(
  r: InstanceRecord,
  layers: ProfileLayer[],
  pool: { name: string; driver: string; description: string; config: Record<string, string>; status: string },
  profiles: { name: string; description: string; config: Record<string, string>; devices: Record<string, Record<string, string>> }[],
  snapshots: BackupSnapshotRecord[] = [],
): BackupConfig {
  const used = new Set(r.profiles);
  return {
    // The instance as the API shows it, stopped; backup.yaml names every instance a container.
    container: {
      ...toApi(r, { status: "Stopped", status_code: 102 }, layers),
      type: "container",
      config: { ...r.config, "volatile.last_state.power": "STOPPED" },
    },
    snapshots: snapshots.map((x) => ({
      name: x.name,
      architecture: x.architecture,
      description: x.description,
      config: x.config,
      devices: x.devices,
      profiles: x.profiles,
      ephemeral: x.ephemeral,
      stateful: false,
      created_at: x.created_at,
      last_used_at: x.last_used_at,
      expires_at: x.expires_at,
      expanded_config: expandConfig(x, layers),
      expanded_devices: expandDevices(x, layers),
      size: -1,
    })),
    pool: { name: pool.name, driver: pool.driver, description: pool.description, config: pool.config, used_by: [], status: pool.status, locations: ["none"] },
    profiles: profiles
      .filter((p) => used.has(p.name))
      .map((p) => ({ name: p.name, description: p.description, config: p.config, devices: p.devices, used_by: [] })),
    volume: {
      name: r.name,
      type: "container",
      description: "",
      config: {},
      used_by: [],
      location: "none",
      content_type: "filesystem",
      project: r.project,
      created_at: GO_ZERO_TIME,
    },
    volume_snapshots: snapshots.map((x) => ({ name: x.name, description: "", expires_at: x.expires_at, config: {}, content_type: "filesystem", created_at: x.created_at })),
  };
}
