/** A storage pool as GET /1.0/storage-pools/<name> returns it (LXD 5.0's shape). */
export interface StoragePool {
  name: string;
  driver: string;
  description: string;
  status: string;
  config: Record<string, string>;
  used_by: string[];
  locations: string[];
}

export interface StoragePoolPut {
  description?: string;
  config?: Record<string, string>;
}

export interface StoragePoolsPost extends StoragePoolPut {
  name: string;
  driver: string;
}

export interface StoragePoolResources {
  space: { used: number; total: number };
  inodes: { used: number; total: number };
}

/** A storage volume (GET /1.0/storage-pools/<p>/volumes/<type>/<name>). */
export interface StorageVolume {
  name: string;
  type: string;
  description: string;
  config: Record<string, string>;
  content_type: string;
  created_at: string;
  location: string;
  project: string;
  used_by: string[];
}

export interface StorageVolumePut {
  description?: string;
  config?: Record<string, string>;
  /** Restores the named snapshot. */
  restore?: string;
}

export interface StorageVolumesPost extends StorageVolumePut {
  name: string;
  type?: string;
  content_type?: string;
  source?: { type?: string; name?: string; pool?: string; volume_only?: boolean; refresh?: boolean };
}

/** POST /1.0/storage-pools/<p>/volumes/<type>/<name>: rename, or move to another pool. */
export interface StorageVolumePost {
  name?: string;
  pool?: string;
  volume_only?: boolean;
  migration?: boolean;
}

export interface StorageVolumeSnapshot {
  name: string;
  description: string;
  config: Record<string, string>;
  content_type: string;
  created_at: string;
  expires_at: string;
}
