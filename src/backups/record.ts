/** Backups as the store keeps them and as the API shows them. */
import { badRequest } from "../api/errors.js";
import { instanceUrl } from "../instances/record.js";

/** What the store keeps for a backup at backups/<project>/<instance>/<name>. */
export interface BackupRecord {
  name: string;
  project: string;
  instance: string;
  created_at: string;
  expires_at: string;
  instance_only: boolean;
  optimized_storage: boolean;
  compression_algorithm: string;
}

/** The wire shape (reference: InstanceBackup). */
export interface InstanceBackup {
  name: string;
  created_at: string;
  expires_at: string;
  instance_only: boolean;
  container_only: boolean;
  optimized_storage: boolean;
}

export interface BackupsPost {
  name?: string;
  expires_at?: string;
  instance_only?: boolean;
  container_only?: boolean;
  optimized_storage?: boolean;
  compression_algorithm?: string;
}

export const BACKUPS = "backups/";
export const backupKey = (project: string, instance: string, name: string) => `${BACKUPS}${project}/${instance}/${name}`;
export const instanceBackupsPrefix = (project: string, instance: string) => `${BACKUPS}${project}/${instance}/`;

export function toApiBackup(b: BackupRecord): InstanceBackup {
  return {
    name: b.name,
    created_at: b.created_at,
    expires_at: b.expires_at,
    instance_only: b.instance_only,
    container_only: b.instance_only,
    optimized_storage: b.optimized_storage,
  };
}

export function backupUrl(project: string, instance: string, name: string): string {
  const base = instanceUrl(project, instance);
  const [path, query] = base.split("?");
  return `${path}/backups/${encodeURIComponent(name)}${query ? `?${query}` : ""}`;
}

export function checkBackupName(name: string): void {
  if (name === "" || name.includes("/") || name.startsWith(".") || name.length > 255 || /[\0\n]/.test(name))
    throw badRequest(`Invalid backup name "${name}": it may not be empty, start with "." or contain "/"`);
}
