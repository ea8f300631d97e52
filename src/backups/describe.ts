/** backup.yaml for an instance and its snapshots, from Lodge's records. */
import { expandConfig, expandDevices } from "../instances/expand.js";
import type { InstanceRecord } from "../instances/record.js";
import type { ProfileLayer } from "../profiles/record.js";
import { GO_ZERO_TIME, type BackupConfig } from "./config.js";

/** A snapshot as a backup records it (the snapshots service's records have this shape). */
export interface BackupSnapshotRecord {
  name: string;
  architecture: string;
  description: string;
  config: Record<string, string>;
  devices: Record<string, Record<string, string>>;
  profiles: string[];
  ephemeral: boolean;
  created_at: string;
  last_used_at: string;
  expires_at: string;
}

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
    container: {
      name: r.name,
      type: "container",
      architecture: r.architecture,
      description: r.description,
      config: { ...r.config, "volatile.last_state.power": "STOPPED" },
      devices: r.devices,
      profiles: r.profiles,
      ephemeral: r.ephemeral,
      stateful: r.stateful,
      created_at: r.created_at,
      last_used_at: r.last_used_at,
      location: "none",
      project: r.project,
      status: "Stopped",
      status_code: 102,
      expanded_config: expandConfig(r, layers),
      expanded_devices: expandDevices(r, layers),
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
