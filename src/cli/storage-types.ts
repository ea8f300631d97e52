/**
 * The storage wire shapes as the client reads them (LXD 5.0.2's StoragePool*, StorageVolume*,
 * StorageVolumeSnapshot*, StorageVolumeState, ResourcesStoragePool). Kept apart from the
 * daemon's (src/api/storage.ts) for the reason network-types.ts gives: the client talks to any
 * LXD-API server, so lists may arrive as null and fields a real LXD omits are optional here.
 */

export interface StoragePoolPut {
  description?: string;
  config?: Record<string, string>;
}

export interface StoragePoolsPost extends StoragePoolPut {
  name: string;
  driver: string;
}

/** GET /1.0/storage-pools/<name>. */
export interface StoragePool {
  name: string;
  driver: string;
  description: string;
  config: Record<string, string>;
  /** "Created", "Pending", "Errored", "Unknown". */
  status?: string;
  used_by?: string[] | null;
  locations?: string[] | null;
}

/** GET /1.0/storage-pools/<name>/resources. */
export interface StoragePoolResources {
  space: { used?: number; total: number };
  inodes?: { used: number; total: number };
}

/** The volume types LXD names in URLs (`/volumes/<type>/<name>`). */
export const VOLUME_TYPES = ["custom", "image", "container", "virtual-machine"] as const;

export interface StorageVolumePut {
  description?: string;
  config?: Record<string, string>;
  /** The name of a snapshot to restore the volume to. */
  restore?: string;
}

export interface StorageVolumeSource {
  /** "copy" (also across pools), "migration". */
  type?: string;
  name?: string;
  pool?: string;
  volume_only?: boolean;
  refresh?: boolean;
  project?: string;
}

export interface StorageVolumesPost extends StorageVolumePut {
  name: string;
  type: string;
  /** "filesystem" (the default) or "block". */
  content_type?: string;
  source?: StorageVolumeSource;
}

/** POST /1.0/storage-pools/<p>/volumes/<type>/<name>: a rename, or with `pool` a move. */
export interface StorageVolumePost {
  name: string;
  pool?: string;
  project?: string;
  migration?: boolean;
  volume_only?: boolean;
}

/** GET /1.0/storage-pools/<p>/volumes/<type>/<name>. A snapshot in a list is "vol/snap". */
export interface StorageVolume {
  name: string;
  type: string;
  description: string;
  config: Record<string, string>;
  content_type?: string;
  created_at?: string;
  location?: string;
  project?: string;
  used_by?: string[] | null;
}

export interface StorageVolumeSnapshotsPost {
  name?: string;
  expires_at?: string | null;
}

export interface StorageVolumeSnapshotPut {
  description?: string;
  expires_at?: string | null;
}

/** GET /1.0/storage-pools/<p>/volumes/<type>/<vol>/snapshots/<snap>: `name` is the snapshot's alone. */
export interface StorageVolumeSnapshot {
  name: string;
  description: string;
  config: Record<string, string>;
  content_type?: string;
  created_at?: string;
  expires_at?: string | null;
}

/** GET /1.0/storage-pools/<p>/volumes/<type>/<name>/state. */
export interface StorageVolumeState {
  usage: { used: number; total?: number } | null;
}
