import { join } from "node:path";

/** Lodge's state directory: $LODGE_DIR, else /var/lib/lodge (mirrors LXD's layout). */
export function lodgeDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.LODGE_DIR || "/var/lib/lodge";
}

export const socketPath = (dir: string) => join(dir, "unix.socket");
export const logPath = (dir: string) => join(dir, "lodged.log");
export const pidPath = (dir: string) => join(dir, "lodged.pid");
export const databasePath = (dir: string) => join(dir, "database", "lodge.db");
